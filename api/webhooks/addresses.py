"""Where a webhook may be delivered (server-side request forgery): a URL is resolved, every
address it resolves to must be public, and the request then goes to the very address that was
checked (the host name travels in ``Host`` and in TLS SNI, and the certificate is verified
against it). A name that resolves to a public address when the endpoint is created and to an
internal one later (DNS rebinding) is caught at delivery time, because every delivery resolves
and checks again and connects to what it checked, never resolving twice.

``allow_private`` (``SECEVENTS_WEBHOOK_ALLOW_PRIVATE``) lifts the address check and accepts
``http`` too: tests deliver to receivers on loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from secevents.server.http.errors import DomainError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(DomainError):
    status, code, title = 422, "webhook_url_refused", "Webhook URL refused"


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: ``url`` names the address to connect to; ``host`` is what the
    ``Host`` header and TLS (SNI and certificate check) carry."""

    url: str
    host: str
    tls_hostname: str | None


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local (cloud metadata at
    169.254.169.254), shared (100.64/10), reserved, multicast or unspecified — also when an
    IPv4 address hides in IPv6 (``::ffff:10.0.0.1``, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


async def _resolve(host: str, port: int, within: float) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), within
        )
    except (OSError, TimeoutError) as exc:
        raise UrlRefused(f"The host {host!r} does not resolve ({exc}).") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UrlRefused(f"The host {host!r} has no address.")
    return addresses


async def check(url: str, *, allow_private: bool, resolve_within: float = 5.0) -> Target:
    """The destination of ``url`` if a webhook may be delivered there; :class:`UrlRefused` (a 422
    problem) otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UrlRefused("The webhook URL is not valid.") from None
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        raise UrlRefused("Webhook URLs must use https.")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("Webhook URLs must not carry credentials.")
    if parts.fragment:
        raise UrlRefused("Webhook URLs must not carry a fragment.")
    host = parts.hostname
    if not host:
        raise UrlRefused("The webhook URL has no host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UrlRefused("The webhook URL's port is not valid.") from None
    addresses = await _resolve(host, port, resolve_within)
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise UrlRefused(
                f"The host {host!r} resolves to a non-public address ({refused[0]}): webhooks are "
                "delivered to public addresses only."
            )
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Target(
        url=f"{parts.scheme}://{literal}:{port}{path}{query}",
        host=host_header,
        tls_hostname=host.strip("[]") if parts.scheme == "https" else None,
    )
