"""The SDK for analysts: ``to_pandas()`` on any list (every page, flat columns, nested values
kept whole), with real pandas over real HTTP; pandas optional for the SDK itself; ``if_match=``
takes the record as read, or its version, instead of an ETag fetched separately."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import asyncpg
import pandas as pd
import pytest
from litestar import Litestar

from secevents import AsyncClient, Client, PreconditionFailedError
from secevents.schemas.sources import SourceCreate, SourcePatch
from secevents.server.http import auth
from tests.client_helpers import serve

DARABAN = "Tehreek-i-Jihad Pakistan militants storm military compound in Daraban"


@pytest.fixture
async def write_key(conn: asyncpg.Connection) -> str:
    return (await auth.create_key(conn, name="analyst", scopes=["write"])).key


@pytest.fixture
def base_url(app: Litestar) -> Iterator[str]:
    with serve(app) as url:
        yield url


def test_incidents_as_a_dataframe_with_flat_columns(base_url: str) -> None:
    with Client(base_url=base_url) as api:
        frame = api.incidents.list(country="PK").to_pandas()
        records = list(api.incidents.list(country="PK"))
    assert len(frame) == len(records) > 1
    assert list(frame["id"]) == [str(r.id) for r in records]
    for column in ("killed_low", "killed_best", "killed_high", "injured_low", "occurred_start", "country"):
        assert column in frame.columns, column
    assert str(frame["occurred_start"].dtype).startswith("datetime64")
    assert str(frame["created_at"].dtype).startswith("datetime64") and "UTC" in str(frame["created_at"].dtype)
    row = frame[frame["title"] == DARABAN].iloc[0]
    assert (row["killed_low"], row["killed_best"], row["injured_low"]) == (23, 23, 31)
    assert pd.isna(row["killed_high"]) and pd.isna(row["injured_best"])
    assert row["occurred_start"] == pd.Timestamp("2023-12-12")
    assert (row["country"], row["admin2"], row["place"]) == ("PK", "Dera Ismail Khan", "Daraban")
    assert row["participant_names"] == ["Tehreek-i-Jihad Pakistan", "Pakistan Army"]
    # What cannot be flattened stays whole: lists of objects, as plain dicts.
    assert [p["role"] for p in row["participants"]] == ["perpetrator", "target"]
    assert row["breakdown"][0]["group"] == "security_forces"
    assert row["citations"][0]["quote"]
    # Filtering like any DataFrame.
    deadly = frame[frame["killed_best"].fillna(0) >= 10]
    assert DARABAN in set(deadly["title"])


def test_to_pandas_walks_every_page(base_url: str) -> None:
    with Client(base_url=base_url) as api:
        first = api.organisations.list(limit=2)
        assert first.has_next_page()
        frame = first.to_pandas()
        everyone = list(api.organisations.list(limit=500))
    assert len(frame) == len(everyone) > 2
    assert "aliases" in frame.columns and "country" in frame.columns


def test_an_empty_list_keeps_its_columns(base_url: str) -> None:
    with Client(base_url=base_url) as api:
        frame = api.incidents.list(country="NZ").to_pandas()
    assert len(frame) == 0 and {"killed_best", "occurred_start", "participant_names"} <= set(frame.columns)


async def test_async_lists_and_pages_too(base_url: str) -> None:
    async with AsyncClient(base_url=base_url) as api:
        from_pager = await api.statements.list().to_pandas()
        page = await api.incidents.list(limit=1)
        from_page = await page.to_pandas()
    assert len(from_pager) == 1 and "issued_start" in from_pager.columns
    assert {"claims", "figures"} <= set(from_pager.columns)
    assert len(from_page) > 1 and DARABAN in set(from_page["title"])


def test_the_sdk_imports_without_pandas(base_url: str) -> None:
    probe = f"""
import sys
sys.modules["pandas"] = None  # as if not installed
from secevents import Client
with Client(base_url={base_url!r}) as api:
    page = api.incidents.list(limit=1)
    assert page.data
    try:
        page.to_pandas()
    except ModuleNotFoundError as exc:
        print(exc)
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "to_pandas() needs pandas: pip install 'secevents[pandas]'\n"


def test_if_match_takes_the_record_or_its_version(base_url: str, write_key: str) -> None:
    with Client(base_url=base_url, api_key=write_key) as api:
        created = api.sources.create(SourceCreate(kind="report", title="Annual report"))
        updated = api.sources.update(created.id, SourcePatch(publisher="Ministry"), if_match=created)
        assert updated.version == 2
        with pytest.raises(PreconditionFailedError):
            api.sources.update(created.id, SourcePatch(publisher=None), if_match=created)  # stale
        with pytest.raises(PreconditionFailedError):
            api.sources.update(created.id, SourcePatch(publisher=None), if_match=1)
        again = api.sources.update(created.id, SourcePatch(publisher=None), if_match=2)
        assert again.version == 3 and again.publisher is None
        api.sources.delete(created.id, if_match=again)
        assert not [s for s in api.sources.list() if s.id == created.id]
        with pytest.raises(TypeError):
            api.sources.delete(created.id, if_match=True)
