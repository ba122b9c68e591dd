"""Webhooks: endpoints managed over the API (admin scope), deliveries to real HTTP receivers on
loopback, signed per the Standard Webhooks specification (checked with its reference library),
in feed order, retried, disabled when they keep failing, delivered once by several workers, and
never to a private address unless the server allows it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from secevents import AsyncClient, webhooks
from secevents.schemas.webhooks import WebhookCreate, WebhookPatch
from secevents.server import db
from secevents.server.settings import DatabaseSettings, Settings, WebhookSettings
from secevents.server.webhooks import addresses
from secevents.server.webhooks.sender import Sender
from secevents.server.webhooks.worker import DeliveryWorker
from tests.receivers import Receiver, receiver, unused_url
from tests.support import assert_problem, create_test_app, serve, until
from tests.writing import Keys, incident_body, live_server, make_keys

# Compressed: 4 retries a few tens of milliseconds apart, then the endpoint is disabled.
FAST = WebhookSettings(
    allow_private=True,
    retry_schedule=(0.02, 0.05, 0.05, 0.05),
    retry_jitter=0.5,
    poll_interval=0.05,
    timeout=5,
)


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> Keys:
    return await make_keys(conn)


def with_webhooks(settings: Settings, webhooks: WebhookSettings = FAST) -> Settings:
    return dataclasses.replace(settings, webhooks=webhooks)


async def create_webhook(client: httpx.AsyncClient, keys: Keys, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "types": ["incident"], **fields}
    response = await client.post("/v1/webhooks", json=body, headers=keys.header(keys.admin))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def write_incidents(
    client: httpx.AsyncClient, conn: asyncpg.Connection, keys: Keys, count: int, **overrides: Any
) -> list[dict[str, Any]]:
    bodies = [await incident_body(conn, title=f"Webhook test {n}", **overrides) for n in range(count)]
    return await post_incidents(client, keys, bodies)


async def post_incidents(
    client: httpx.AsyncClient, keys: Keys, bodies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    made = []
    for body in bodies:
        response = await client.post("/v1/incidents", json=body, headers=keys.header(keys.write))
        assert response.status_code == 201, response.text
        made.append(response.json())
    return made


async def rename_incidents(client: httpx.AsyncClient, keys: Keys, ids: list[str], title: str) -> None:
    for record in ids:
        response = await client.patch(
            f"/v1/incidents/{record}", json={"title": title}, headers=keys.header(keys.write)
        )
        assert response.status_code == 200, response.text


async def caught_up(client: httpx.AsyncClient, keys: Keys, endpoint: dict[str, Any]) -> bool:
    """Nothing of the endpoint's types is left after its cursor: no delivery is under way."""
    state = (await client.get(f"/v1/webhooks/{endpoint['id']}", headers=keys.header(keys.admin))).json()
    params = {"after": state["cursor"], "types": ",".join(endpoint["types"])}
    response = await client.get("/v1/changes", params=params)
    assert response.status_code == 200, response.text
    return bool(response.json()["data"] == [])


def without_cursors(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feed entries as a webhook carries them: the server, not the receiver, keeps the position."""
    return [{k: v for k, v in entry.items() if k != "cursor"} for entry in entries]


def verified(received: Receiver, secret: str) -> list[dict[str, Any]]:
    """Every accepted message, its signature checked by the Standard Webhooks library."""
    return [Webhook(secret).verify(r.body, r.headers) for r in received.accepted]


async def test_every_change_arrives_in_order_and_signed_after_failures(
    settings: Settings, conn: asyncpg.Connection, keys: Keys
) -> None:
    # Three failures of three kinds first: a 500, a redirect (not followed) and a 503.
    with receiver(failures=[500, 302, 503]) as hook:
        async with serve(with_webhooks(settings)) as client:
            endpoint = await create_webhook(client, keys, hook.url, description="all incidents")
            assert endpoint["secret"].startswith("whsec_")
            created = await write_incidents(client, conn, keys, 4)
            # An update and a delete too: every operation is a message.
            first = created[0]
            auth = keys.header(keys.write)
            url = f"/v1/incidents/{first['id']}"
            etag = (await client.get(url)).headers["etag"]
            updated = await client.patch(url, json={"title": "Renamed"}, headers={**auth, "If-Match": etag})
            assert updated.status_code == 200, updated.text
            deleted = await client.delete(url, headers={**auth, "If-Match": updated.headers["etag"]})
            assert deleted.status_code == 204

            await until(lambda: len(hook.accepted) >= 6)
            # The last attempt is logged with the cursor's move, after the receiver answered.
            await until(lambda: caught_up(client, keys, endpoint))
            messages = verified(hook, endpoint["secret"])
            feed = (
                await client.get("/v1/changes", params={"after": endpoint["cursor"], "types": "incident"})
            ).json()["data"]
            deliveries = (
                await client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=keys.header(keys.admin))
            ).json()["data"]
            state = (
                await client.get(f"/v1/webhooks/{endpoint['id']}", headers=keys.header(keys.admin))
            ).json()

    # Every change once, in feed order, each the feed's own entry.
    assert [m["data"] for m in messages] == without_cursors(feed)
    assert [m["type"] for m in messages] == [
        *["incident.created"] * 4,
        "incident.updated",
        "incident.deleted",
    ]
    assert all(m["webhook_id"] == endpoint["id"] for m in messages)
    # The failed attempts were of the first change, with the same message id as its delivery.
    assert [r.status for r in hook.requests[:4]] == [500, 302, 503, 204]
    assert len({r.headers["webhook-id"] for r in hook.requests[:4]}) == 1
    assert len({r.headers["webhook-id"] for r in hook.requests}) == 6
    # The delivery log, newest first: every attempt with its status, latency and error.
    oldest = deliveries[::-1]
    assert [(d["attempt"], d["status_code"], d["succeeded"]) for d in oldest[:4]] == [
        (1, 500, False),
        (2, 302, False),
        (3, 503, False),
        (4, 204, True),
    ]
    assert oldest[1]["error"] == "HTTP 302 (redirects are not followed)"
    assert oldest[0]["response_excerpt"] == "x" * 1024
    assert all(d["latency_ms"] is not None and d["latency_ms"] >= 0 for d in oldest)
    assert [d["change_seq"] for d in oldest[3:]] == [c["seq"] for c in feed]
    assert state["enabled"] is True
    assert state["attempts"] == 0
    assert state["last_delivered_at"] is not None
    assert "secret" not in state


async def _one_change_with_an_hourly_poll(
    settings: Settings, conn: asyncpg.Connection, keys: Keys, failures: list[int]
) -> None:
    """With a poll every hour (far above the test's timeout), one change committed while the
    worker sleeps with nothing left to do reaches a receiver that first answers ``failures``."""
    app = create_test_app(with_webhooks(settings, dataclasses.replace(FAST, poll_interval=3600)))
    with receiver(failures=failures) as hook:
        async with (
            app.lifespan(),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://hooks.local"
            ) as client,
        ):
            endpoint = await create_webhook(client, keys, hook.url)
            worker = app.state.webhook_worker
            await until(lambda: worker.idle and app.state.changes.listener.connected.is_set())
            (incident,) = await write_incidents(client, conn, keys, 1)
            await until(lambda: hook.accepted)
    # At least once: a slow answer may bring the same message again, never another one.
    messages = verified(hook, endpoint["secret"])
    assert {(m["type"], m["data"]["id"]) for m in messages} == {("incident.created", incident["id"])}


async def test_the_feed_wakes_the_worker_so_a_change_goes_out_within_an_hourly_poll(
    settings: Settings, conn: asyncpg.Connection, keys: Keys
) -> None:
    """The change listener wakes the worker."""
    await _one_change_with_an_hourly_poll(settings, conn, keys, failures=[])


async def test_a_retry_goes_out_when_due_not_at_the_next_hourly_poll(
    settings: Settings, conn: asyncpg.Connection, keys: Keys
) -> None:
    """The first attempt fails (503): the worker wakes for the retry it scheduled (20–30 ms
    later), not only at the poll, an hour away."""
    await _one_change_with_an_hourly_poll(settings, conn, keys, failures=[503])


async def test_an_endpoint_that_keeps_failing_is_disabled_with_the_reason(
    settings: Settings, conn: asyncpg.Connection, keys: Keys
) -> None:
    async with serve(with_webhooks(settings)) as client:
        endpoint = await create_webhook(client, keys, unused_url())
        await write_incidents(client, conn, keys, 2)
        admin = keys.header(keys.admin)

        async def disabled() -> bool:
            state = (await client.get(f"/v1/webhooks/{endpoint['id']}", headers=admin)).json()
            return state["enabled"] is False

        await until(disabled)
        state = (await client.get(f"/v1/webhooks/{endpoint['id']}", headers=admin)).json()
        deliveries = (await client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=admin)).json()[
            "data"
        ]
        first_change = (await client.get("/v1/changes", params={"after": endpoint["cursor"]})).json()["data"][
            0
        ]

        # The configured schedule: the first attempt and four retries, all of the first change.
        assert len(deliveries) == len(FAST.retry_schedule) + 1
        assert {d["change_seq"] for d in deliveries} == {first_change["seq"]}
        assert all(not d["succeeded"] and d["status_code"] is None and d["error"] for d in deliveries)
        assert state["disabled_reason"].startswith(f"gave up on change {first_change['seq']}")
        assert state["disabled_at"] is not None
        # The cursor stays before the change that failed: re-enabling retries it.
        assert state["cursor"] == endpoint["cursor"]

        with receiver() as hook:
            patched = await client.patch(
                f"/v1/webhooks/{endpoint['id']}", json={"url": hook.url, "enabled": True}, headers=admin
            )
            assert patched.status_code == 200, patched.text
            assert patched.json()["disabled_reason"] is None
            await until(lambda: len(hook.accepted) >= 2)
            assert verified(hook, endpoint["secret"])[0]["data"]["seq"] == first_change["seq"]


async def test_filters_pick_incidents_by_the_list_filters_meaning(
    settings: Settings, conn: asyncpg.Connection, keys: Keys
) -> None:
    with receiver() as hook:
        async with serve(with_webhooks(settings)) as client:
            # The first participant of every incident `incident_body` makes.
            org = await conn.fetchval(
                "SELECT id::text FROM organisations WHERE deleted_at IS NULL ORDER BY id LIMIT 1"
            )
            endpoint = await create_webhook(
                client,
                keys,
                hook.url,
                filters={"country": ["AF"], "type": ["battle", "riot"], "organisation": [org]},
            )
            pakistan = await write_incidents(client, conn, keys, 1)
            location = {"country": "AF", "precision": "country"}
            afghanistan = await write_incidents(client, conn, keys, 1, location=location)
            protest = await write_incidents(client, conn, keys, 1, location=location, type="protest")
            # The organisation in another role still counts (any role).
            other = await incident_body(conn, location=location)
            other["participants"] = [{"organisation_id": org, "role": "responder"}]
            last = await client.post("/v1/incidents", json=other, headers=keys.header(keys.write))
            assert last.status_code == 201
            await until(lambda: len(hook.accepted) >= 2)
            # Caught up: nothing else passes.
            await until(lambda: caught_up(client, keys, endpoint))
    ids = [m["data"]["id"] for m in verified(hook, endpoint["secret"])]
    assert ids == [afghanistan[0]["id"], last.json()["id"]]
    assert pakistan[0]["id"] not in ids and protest[0]["id"] not in ids


async def test_two_server_processes_deliver_each_change_once(
    database_url: str, conn: asyncpg.Connection, keys: Keys
) -> None:
    env = {
        "SECEVENTS_WEBHOOK_ALLOW_PRIVATE": "1",
        "SECEVENTS_WEBHOOK_POLL_INTERVAL": "0.02",
        "SECEVENTS_REQUIRE_IF_MATCH": "false",
    }
    with receiver() as hook:
        async with (
            live_server(database_url, **env) as first,
            live_server(database_url, **env) as second,
            httpx.AsyncClient(base_url=first) as one,
            httpx.AsyncClient(base_url=second) as two,
        ):
            endpoint = await create_webhook(one, keys, hook.url, types=["incident", "source"])
            # Writers on both servers at once.
            bodies = [await incident_body(conn, title=f"Webhook test {n}") for n in range(30)]
            made = await asyncio.gather(
                post_incidents(one, keys, bodies[:15]), post_incidents(two, keys, bodies[15:])
            )
            # And both servers updating the same five records at once: two versions each.
            shared = [incident["id"] for incident in made[0][:5]]
            await asyncio.gather(
                rename_incidents(one, keys, shared, "first"), rename_incidents(two, keys, shared, "second")
            )
            await until(lambda: caught_up(two, keys, endpoint))
            params = {"after": endpoint["cursor"], "limit": 100}
            feed = (await one.get("/v1/changes", params=params)).json()["data"]
    # Once the cursor is at the head no delivery can be under way: the receiver's list is final.
    assert len(hook.requests) == 40
    delivered = [m["data"] for m in verified(hook, endpoint["secret"])]
    # Every change once, each the feed's own entry. Which of two writers' changes comes first is
    # not promised: a transaction that commits after a worker's snapshot lands in its next batch,
    # after changes with a higher seq, while this one-shot read of the feed has them in one batch.
    assert sorted(delivered, key=lambda change: change["seq"]) == without_cursors(feed)
    # Each record's changes in commit order (versions ascending).
    for record in {change["id"] for change in delivered}:
        versions = [change["version"] for change in delivered if change["id"] == record]
        assert versions == sorted(versions)


async def test_test_event_is_signed_and_logged(
    settings: Settings, conn: asyncpg.Connection, keys: Keys
) -> None:
    with receiver() as hook:
        async with serve(with_webhooks(settings, dataclasses.replace(FAST, worker=False))) as client:
            endpoint = await create_webhook(client, keys, hook.url)
            admin = keys.header(keys.admin)
            response = await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=admin)
            assert response.status_code == 200, response.text
            attempt = response.json()
            deliveries = (await client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=admin)).json()
    (message,) = verified(hook, endpoint["secret"])
    assert message["type"] == "webhook.test"
    assert message["data"] is None
    assert attempt["succeeded"] is True and attempt["status_code"] == 204
    assert attempt["event_type"] == "webhook.test"
    assert attempt["message_id"] == hook.requests[0].headers["webhook-id"]
    assert deliveries["data"] == [attempt]


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "http://93.184.215.14/hook",
        "https://no-such-host.invalid/hook",
    ],
)
async def test_a_url_that_is_not_https_to_a_public_address_is_refused(
    client: httpx.AsyncClient, keys: Keys, url: str
) -> None:
    response = await client.post(
        "/v1/webhooks", json={"url": url, "types": ["incident"]}, headers=keys.header(keys.admin)
    )
    assert_problem(response, 422, "webhook_url_refused")


@pytest.mark.parametrize(
    "url",
    ["https://[::1]/hook", "https://[::ffff:10.0.0.1]/hook", "https://[fd00::1]/", "https://[2002:a00:1::]/"],
)
async def test_private_ipv6_addresses_are_refused(url: str) -> None:
    with pytest.raises(addresses.UrlRefused, match="non-public"):
        await addresses.check(url, allow_private=False)


async def test_a_public_ipv6_address_is_accepted() -> None:
    target = await addresses.check("https://[2606:4700::1111]:8443/hook?x=1", allow_private=False)
    assert target.url == "https://[2606:4700::1111]:8443/hook?x=1"
    assert target.host == "[2606:4700::1111]:8443"


async def test_a_public_address_is_accepted_and_a_private_one_refused_on_update(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    admin = keys.header(keys.admin)
    created = await client.post(
        "/v1/webhooks", json={"url": "https://93.184.215.14/hook", "types": ["source"]}, headers=admin
    )
    assert created.status_code == 201, created.text
    webhook_id = created.json()["id"]
    refused = await client.patch(
        f"/v1/webhooks/{webhook_id}", json={"url": "https://10.0.0.1/"}, headers=admin
    )
    assert_problem(refused, 422, "webhook_url_refused")
    listed = (await client.get("/v1/webhooks", headers=admin)).json()["data"]
    assert [w["url"] for w in listed] == ["https://93.184.215.14/hook"]
    assert (await client.delete(f"/v1/webhooks/{webhook_id}", headers=admin)).status_code == 204
    assert_problem(await client.get(f"/v1/webhooks/{webhook_id}", headers=admin), 404, "not_found")


async def test_the_address_is_checked_again_at_delivery(
    settings: Settings, conn: asyncpg.Connection, keys: Keys
) -> None:
    """An endpoint stored while private addresses were allowed, delivered by a server that
    does not allow them: the resolved address is refused at delivery (as after DNS rebinding)."""
    with receiver() as hook:
        async with serve(with_webhooks(settings)) as client:
            endpoint = await create_webhook(client, keys, hook.url)
        strict = dataclasses.replace(FAST, allow_private=False)
        async with serve(with_webhooks(settings, strict)) as client:
            await write_incidents(client, conn, keys, 1)
            admin = keys.header(keys.admin)

            async def attempted() -> list[dict[str, Any]]:
                response = await client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=admin)
                data: list[dict[str, Any]] = response.json()["data"]
                return data

            await until(attempted)
            (first, *_) = (await attempted())[::-1]
    assert hook.requests == []
    assert first["succeeded"] is False
    assert first["error"].startswith("refused: ")


async def test_webhooks_need_the_admin_scope(client: httpx.AsyncClient, keys: Keys) -> None:
    body = {"url": "https://93.184.215.14/hook", "types": ["incident"]}
    assert_problem(await client.post("/v1/webhooks", json=body), 401, "unauthorized")
    assert_problem(await client.get("/v1/webhooks"), 401, "unauthorized")
    for key in (keys.read, keys.write):
        assert_problem(
            await client.post("/v1/webhooks", json=body, headers=keys.header(key)), 403, "forbidden"
        )
        assert_problem(await client.get("/v1/webhooks", headers=keys.header(key)), 403, "forbidden")


def test_the_sdk_verifies_what_the_standard_library_signs() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = (
        b'{"type":"webhook.test","timestamp":"2026-11-30T12:00:00Z",'
        b'"webhook_id":"0193a0c0-0000-7000-8000-000000000001","data":null}'
    )
    sent = dt.datetime.now(dt.UTC)
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(int(sent.timestamp())),
        "Webhook-Signature": Webhook(secret).sign("msg_1", sent, body.decode()),
    }
    event = webhooks.verify(body, headers, secret)
    assert event.type == "webhook.test"
    assert event.data is None
    # And the reference library accepts what the SDK signs.
    assert (
        webhooks.sign(body, message_id="msg_1", timestamp=int(sent.timestamp()), secret=secret)
        == (headers["Webhook-Signature"])
    )
    for forged in (
        body.replace(b"null", b"{}"),
        body + b" ",
    ):
        with pytest.raises(webhooks.WebhookVerificationError):
            webhooks.verify(forged, headers, secret)
    with pytest.raises(webhooks.WebhookVerificationError, match="too far"):
        webhooks.verify(body, headers, secret, now=sent.timestamp() + 600)
    with pytest.raises(webhooks.WebhookVerificationError, match="No signature"):
        webhooks.verify(body, headers, "whsec_" + base64.b64encode(b"x" * 32).decode())
    with pytest.raises(webhooks.WebhookVerificationError, match="Missing"):
        webhooks.verify(body, {}, secret)


async def test_the_sdk_manages_endpoints_and_verifies_deliveries(
    settings: Settings, conn: asyncpg.Connection, keys: Keys
) -> None:
    with receiver() as hook:
        async with serve(with_webhooks(settings)) as client:
            api = AsyncClient(base_url="http://testserver.local", api_key=keys.admin, http_client=client)
            created = await api.webhooks.create(WebhookCreate(url=hook.url, types=["incident"]))
            assert created.secret.startswith("whsec_")
            listed = [w async for w in api.webhooks.list()]
            assert [w.id for w in listed] == [created.id]
            paused = await api.webhooks.update(created.id, WebhookPatch(enabled=False))
            assert paused.enabled is False and paused.disabled_reason == "disabled by an administrator"
            attempt = await api.webhooks.test(created.id)
            assert attempt.succeeded
            (logged,) = [d async for d in api.webhooks.deliveries(created.id)]
            assert logged == attempt
            await api.webhooks.delete(created.id)
    (received,) = hook.requests
    event = webhooks.verify(received.body, received.headers, created.secret)
    assert event.type == "webhook.test" and event.webhook_id == created.id


async def test_the_worker_stops_when_cancelled_just_as_it_is_woken(database_url: str) -> None:
    """A cancellation that arrives once the wake-up event is set, before the worker has run
    again, stops the worker (Python 3.11's ``asyncio.wait_for`` returned normally then, the
    worker went on polling, and the server's shutdown waited for it forever)."""
    pool = await db.create_pool(
        database_url, DatabaseSettings(url=database_url, pool_min_size=1, pool_max_size=2)
    )
    sender = Sender(allow_private=True, timeout=5)
    try:
        for _ in range(5):
            worker = DeliveryWorker(pool, sender, dataclasses.replace(FAST, poll_interval=3600))
            task = asyncio.create_task(worker.run())
            await until(lambda w=worker: w.idle)
            worker.wake()
            await asyncio.sleep(0)  # the event's waiter is done; the worker has not run since
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10)
            assert done == {task} and task.cancelled()
            await worker.stop()
    finally:
        await sender.close()
        await pool.close()
