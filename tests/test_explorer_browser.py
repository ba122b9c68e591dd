"""The explorer in a real browser: Debian's chromium (``.ci/apt-packages``; no browser is
downloaded) driven by Playwright, the app served over real HTTP by uvicorn in a thread.

Expected values come from the sample dataset (data/sample/dataset.json) and the article text,
never typed in twice. Waits are on what the page shows (its ``data-*`` state), so a slow
machine only makes them longer (Playwright's own timeouts are off; pytest's is the limit).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

from secevents.server.app import create_app
from secevents.server.http import auth
from secevents.server.importers import ucdp
from secevents.server.settings import Settings
from tests.client_helpers import serve
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent
DATASET = json.loads((ROOT / "data/sample/dataset.json").read_text())
ARTICLE = (ROOT / "data/sample/article.txt").read_text()
# Every run saves the screenshot in build/ (ignored by git: the map's clusters differ by a few
# pixels from run to run); `make screenshot` saves it as the committed docs/explorer.png.
SCREENSHOT = ROOT / os.environ.get("SECEVENTS_SCREENSHOT", "build/explorer.png")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DARABAN = next(i for i in DATASET["incidents"] if i["ref"] == "daraban-attack")
STATEMENT = DATASET["statements"][0]


@dataclass
class Tab:
    """A page of the explorer, with every console error and every request it made."""

    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    async def open(self, query: str = "") -> None:
        await self.page.goto(f"{self.base_url}/{query}")
        await self.settled()

    async def settled(self) -> None:
        """Until the list, the timeline and both map layers have answered."""
        await self.page.wait_for_function(
            """() => document.querySelector('#list').dataset.state === 'ready'
                && document.querySelector('#timeline').dataset.state === 'ready'
                && !['loading', undefined].includes(document.querySelector('#map').dataset.points)
                && !['loading', undefined].includes(document.querySelector('#map').dataset.unlocated)"""
        )

    async def data(self, selector: str) -> dict[str, str]:
        result: dict[str, str] = await self.page.eval_on_selector(selector, "el => ({...el.dataset})")
        return result

    async def list_titles(self) -> list[str]:
        titles: list[str] = await self.page.eval_on_selector_all(
            "#list li .title", "els => els.map(e => e.textContent)"
        )
        return titles

    async def select_from_list(self, title: str) -> None:
        await self.page.click(f"#list li .title:text-is({json.dumps(title)})")
        await self.page.wait_for_selector("#record[data-state=ready]")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=0)
        yield launched
        await launched.close()


async def _tab(browser: Browser, base_url: str) -> Tab:
    page = await browser.new_page(viewport={"width": 1400, "height": 860})
    # No clock of Playwright's own (30 s by default): on a loaded machine a wait just takes
    # longer, and pytest's timeout is the only limit.
    page.set_default_timeout(0)
    tab = Tab(page, base_url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(message.text)

    def on_request(request: Request) -> None:
        tab.requests.append(request)

    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    page.on("request", on_request)
    return tab


@pytest.fixture
async def tab(browser: Browser, settings: Settings) -> AsyncIterator[Tab]:
    with serve(create_app(settings)) as base_url:
        yield await _tab(browser, base_url)


def _incidents_in(country: str) -> list[dict[str, Any]]:
    return [i for i in DATASET["incidents"] if i["location"]["country"] == country]


async def test_page_loads_with_no_console_error_and_no_other_host(tab: Tab) -> None:
    await tab.open()
    assert tab.errors == []
    hosts = {urlsplit(r.url).netloc for r in tab.requests if urlsplit(r.url).scheme not in {"data", "blob"}}
    assert hosts == {urlsplit(tab.base_url).netloc}
    assert sorted(await tab.list_titles()) == sorted(i["title"] for i in DATASET["incidents"])
    # The sample's incidents have no coordinates: each is counted at its country.
    countries = sorted({i["location"]["country"] for i in DATASET["incidents"]})
    map_state = await tab.data("#map")
    assert map_state["unlocatedCountries"].split(",") == countries
    assert map_state["unlocated"] == str(len(DATASET["incidents"]))


async def test_country_filter_updates_url_list_map_and_timeline(tab: Tab) -> None:
    await tab.open()
    pakistan = _incidents_in("PK")
    assert len(pakistan) < len(DATASET["incidents"])
    assert (await tab.data("#timeline"))["incidents"] == str(len(DATASET["incidents"]))

    await tab.page.fill("#f-country", "PK")
    await tab.page.press("#f-country", "Enter")
    await tab.page.wait_for_url("**/?country=PK")
    await tab.page.wait_for_function(
        "n => document.querySelector('#timeline').dataset.incidents === n", arg=str(len(pakistan))
    )
    await tab.settled()

    assert sorted(await tab.list_titles()) == sorted(i["title"] for i in pakistan)
    map_state = await tab.data("#map")
    assert map_state["unlocatedCountries"] == "PK"
    assert map_state["unlocated"] == str(len(pakistan))
    timeline = await tab.data("#timeline")
    assert timeline["incidents"] == str(len(pakistan))
    # Each view asked the API with the filter: the map for what is in view (bbox + limit).
    asked = [parse_qs(urlsplit(r.url).query) for r in tab.requests if "/v1/incidents" in r.url]
    filtered = [q for q in asked if q.get("country") == ["PK"]]
    assert any(q.get("group_by") == ["month"] for q in filtered)
    assert any(q.get("group_by") == ["country"] for q in filtered)
    assert any("bbox" in q and 0 < int(q.get("limit", ["0"])[0]) <= 500 for q in filtered)
    assert any("bbox" not in q and "group_by" not in q for q in filtered)  # the list
    assert tab.errors == []

    # The URL is the view: opened afresh, it shows the same.
    await tab.open("?country=PK")
    assert sorted(await tab.list_titles()) == sorted(i["title"] for i in pakistan)
    assert await tab.page.eval_on_selector_all(
        "#chips-country .chip", "els => els.map(e => e.dataset.value)"
    ) == ["PK"]


async def test_dragging_across_the_timeline_picks_dates(tab: Tab) -> None:
    await tab.open()
    box = await tab.page.locator("#timeline .u-over").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    await tab.page.mouse.move(box["x"] + 1, y)
    await tab.page.mouse.down()
    await tab.page.mouse.move(box["x"] + box["width"] - 1, y, steps=8)
    await tab.page.mouse.up()
    await tab.page.wait_for_url("**/?occurred_after=*")
    query = parse_qs(urlsplit(tab.page.url).query)
    # Across the whole chart: from the first month with an incident to the end of the last.
    starts = sorted(i["occurred"]["start"] for i in DATASET["incidents"])
    assert query["occurred_after"][0] <= starts[0] and query["occurred_before"][0] >= starts[-1]
    assert query["occurred_after"][0].endswith("-01")
    assert await tab.page.input_value("#f-after") == query["occurred_after"][0]
    await tab.settled()
    assert sorted(await tab.list_titles()) == sorted(i["title"] for i in DATASET["incidents"])
    assert tab.errors == []


async def test_organisation_filter_finds_an_alias(tab: Tab) -> None:
    await tab.open()
    isis = next(o for o in DATASET["organisations"] if o["ref"] == "isis")
    alias = "Daesh"
    assert alias in isis["aliases"]
    await tab.page.fill("#f-org", alias.lower())  # the organisations list's `q`: case-insensitive
    await tab.page.click(f"#org-suggestions button:has-text({json.dumps(isis['name'])})")
    await tab.page.wait_for_url("**/?organisation=*")
    await tab.page.wait_for_function(
        "n => document.querySelector('#list').dataset.count === n && document.querySelector('#list').dataset.state === 'ready'",
        arg=str(
            sum(any(p["organisation"] == "isis" for p in i["participants"]) for i in DATASET["incidents"])
        ),
    )
    expected = [
        i["title"]
        for i in DATASET["incidents"]
        if any(p["organisation"] == "isis" for p in i["participants"])
    ]
    assert await tab.list_titles() == expected
    assert await tab.page.inner_text("#chips-organisation .chip") == f"{isis['name']}×"
    assert tab.errors == []


async def test_daraban_incident_in_plain_words_with_its_quote_in_the_article(tab: Tab) -> None:
    await tab.open()
    await tab.select_from_list(DARABAN["title"])
    fields = await tab.page.eval_on_selector_all(
        "#record dl.fields dt",
        "dts => Object.fromEntries(dts.map(dt => [dt.textContent, dt.nextElementSibling.textContent]))",
    )
    assert fields["Killed"] == "at least 23"
    assert fields["Injured"] == "more than 30"
    assert fields["When"] == "12 December 2023 (inferred)"
    assert "no coordinates" in fields["Where"]
    assert (await tab.data("#map"))["selected"] == "country"
    assert "record=incident%3A" in tab.page.url or "record=incident:" in tab.page.url

    quotes = [c["quote"] for c in DARABAN["citations"]]
    shown = await tab.page.eval_on_selector_all(
        "#record figure.citation[data-state=in-text]",
        "figs => figs.map(f => ({mark: f.querySelector('mark').textContent, text: f.querySelector('blockquote').textContent}))",
    )
    assert sorted(s["mark"] for s in shown) == sorted(quotes)
    for s in shown:
        # The quote sits inside the article's own text, with the text around it.
        passage = s["text"].removeprefix("… ").removesuffix(" …")
        assert passage in ARTICLE
        assert len(passage) > len(s["mark"])
    # The organisations come with their aliases.
    tjp = next(o for o in DATASET["organisations"] if o["ref"] == "tjp")
    assert ", ".join(tjp["aliases"]) in await tab.page.inner_text("#record .orgs")
    assert tab.errors == []


async def test_ministry_statement_shows_its_figures_with_their_quotes(tab: Tab) -> None:
    await tab.open("?tab=statements")
    await tab.select_from_list(STATEMENT["title"])
    figure = next(f for f in STATEMENT["figures"] if f["value"] == 16522)
    item = tab.page.locator("#record li.figure", has_text="16,522")
    assert await item.locator(".value").inner_text() == f"16,522 {figure['unit']}"
    assert await item.locator("mark").all_inner_texts() == [c["quote"] for c in figure["citations"]]
    claims = await tab.page.locator("#record li.claim .claim-text").all_inner_texts()
    assert claims == [c["text"] for c in STATEMENT["claims"]]
    assert await tab.page.locator("#record li.claim mark").count() == sum(
        len(c["citations"]) for c in STATEMENT["claims"]
    )
    assert tab.errors == []


async def test_reads_that_need_a_key_ask_for_it_once(
    browser: Browser, database_url: str, conn: asyncpg.Connection
) -> None:
    key = (await auth.create_key(conn, name="explorer", scopes=["read"])).key
    with serve(create_app(make_settings(database_url, public_reads=False))) as base_url:
        tab = await _tab(browser, base_url)
        await tab.page.goto(base_url)
        await tab.page.wait_for_selector("#key-dialog[open]")
        await tab.page.fill("#key-input", key)
        await tab.page.click("#key-form button[value=save]")
        await tab.settled()
        assert sorted(await tab.list_titles()) == sorted(i["title"] for i in DATASET["incidents"])
        assert await tab.page.evaluate("sessionStorage.getItem('secevents.apiKey')") == key
        # A reload keeps the key for the session: no dialog, every API request carries it.
        tab.requests.clear()
        await tab.page.reload()
        await tab.settled()
        assert not await tab.page.is_visible("#key-dialog")
        api = [r for r in tab.requests if "/v1/" in r.url]
        assert api and all(r.headers.get("authorization") == f"Bearer {key}" for r in api)


async def test_screenshot_with_the_sample_and_ucdp_pakistan(tab: Tab, conn: asyncpg.Connection) -> None:
    """Saves the screenshot (docs/explorer.png, linked from the README, by `make screenshot`):
    the explorer over the sample dataset and UCDP GED's Pakistan events, Daraban selected."""
    await ucdp.import_file(conn, ROOT / "data/ucdp/ged_pakistan.csv")
    daraban = await conn.fetchval("SELECT id FROM incidents WHERE title = $1", DARABAN["title"])
    await tab.open(f"?country=PK&record=incident:{daraban}")
    await tab.page.wait_for_selector("#record[data-state=ready]")
    assert int((await tab.data("#map"))["points"]) > 0
    assert int((await tab.data("#timeline"))["incidents"]) > len(_incidents_in("PK"))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    await tab.page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000

    # The list pages with the API's cursor.
    await tab.page.click("#record .close")
    first = await tab.list_titles()
    await tab.page.click("#list button.more")
    await tab.page.wait_for_function(
        "n => document.querySelector('#list').dataset.count === n", arg=str(2 * len(first))
    )
    assert (await tab.list_titles())[: len(first)] == first
    assert any("cursor" in parse_qs(urlsplit(r.url).query) for r in tab.requests if "/v1/incidents?" in r.url)
    assert tab.errors == []
