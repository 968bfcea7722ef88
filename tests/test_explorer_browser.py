"""The Explorer page in a real browser: headless Chromium (the OS package) driven by Playwright.

Real events go into a ``LocalKeenServer`` started here; queries are built by clicking and typing
like a user; the numbers in the table are checked against a brute-force count of the same
events, the chart against its SVG elements, the snippets by running them.

Outside CI the module is skipped when Playwright or Chromium is missing; under CI (``CI`` set)
that is a failure: ``.ci/run`` installs both (``pip install -e .[browser]``, ``apt-get install
chromium``).
"""

from __future__ import annotations

import ast
import http.server
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from _server_helpers import REPO, TIMEOUT

from keen.server import LocalKeenServer, ProjectConfig

NOW = datetime(2026, 3, 11, 15, 30, tzinfo=timezone.utc)
DAYS = [(NOW - timedelta(days=d)).date().isoformat() for d in range(6, -1, -1)]
WAIT_MS = 15_000
# Event data is the page's input too: it must show as text, never run.
HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">'


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    executable = _chromium()
    if sync_playwright is None or executable is None:
        missing = "playwright (pip install -e '.[browser]')" if sync_playwright is None \
            else "chromium (apt-get install chromium)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"the Explorer browser tests need {missing}; .ci/run installs it")
        pytest.skip(f"needs {missing}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            yield browser
        finally:
            browser.close()


# --- the events -----------------------------------------------------------------------------

def _events() -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(11)
    items = [("sku-1", "Mug", "kitchen", 12.5), ("sku-2", "Shirt", "clothes", 25),
             ("sku-3", "Poster", "decor", 8), ("sku-4", "Hoodie", "clothes", 49)]
    cities = [("FR", "Paris"), ("DE", "Berlin"), ("US", "Austin"), ("JP", "Osaka")]
    signups, logins, purchases = [], [], []
    for n in range(30):
        user = f"u{n:02d}"
        day = rng.randrange(7)
        when = NOW - timedelta(days=day, hours=rng.randrange(1, 12), minutes=rng.randrange(60))
        country, city = rng.choice(cities)
        profile = {"id": user, "plan": rng.choice(["free", "pro"]),
                   "geo": {"country": country, "city": city}}
        signups.append({"user": profile, "referrer": rng.choice([None, "ads", "blog", HOSTILE]),
                        "keen": {"timestamp": when.isoformat()}})
        if n % 3:
            logins.append({"user": {"id": user}, "method": rng.choice(["password", "sso"]),
                           "keen": {"timestamp": when.isoformat()}})
        if n % 3 == 1 or n % 5 == 0:
            for _ in range(rng.randrange(1, 4)):
                item_id, name, category, price = rng.choice(items)
                quantity = rng.randrange(1, 4)
                at = NOW - timedelta(days=rng.randrange(7), hours=rng.randrange(1, 12),
                                     seconds=len(purchases))  # no two at the same time
                purchases.append({
                    "user": profile, "item": {"id": item_id, "name": name,
                                              "category": category},
                    "price": price, "quantity": quantity, "total": price * quantity,
                    "platform": rng.choice(["ios", "android", "web"]),
                    "coupon": rng.random() < 0.3, "tags": rng.sample(["gift", "sale", "new"], 2),
                    "session": {"id": f"s{rng.randrange(10**6)}", "pages": rng.randrange(1, 30)},
                    "keen": {"timestamp": at.isoformat()},
                })
    return {"signups": signups, "logins": logins, "purchases": purchases}


EVENTS = _events()


def _day(event: dict[str, Any]) -> str:
    return str(event["keen"]["timestamp"])[:10]


@pytest.fixture(scope="module", name="server")
def server_fixture() -> Iterator[LocalKeenServer]:
    with LocalKeenServer(clock=lambda: NOW) as server:
        answer = server.client.add_events(EVENTS)
        assert all(item["success"] for items in answer.values() for item in items)
        server.client.saved_queries.create("revenue-by-item", {"query": {
            "analysis_type": "sum", "event_collection": "purchases", "target_property": "total",
            "timeframe": "this_7_days", "group_by": "item.name"}})
        server.client.saved_queries.create("spend-and-buyers", {"query": {
            "analysis_type": "multi_analysis", "event_collection": "purchases",
            "timeframe": "this_7_days", "max_age": 300,
            "analyses": {"spend": {"analysis_type": "sum", "target_property": "total"},
                         "buyers": {"analysis_type": "count_unique",
                                    "target_property": "user.id"}}}})
        server.client.cached_datasets.create(
            "daily-spend", {"analysis_type": "sum", "event_collection": "purchases",
                            "target_property": "total", "timeframe": "this_7_days",
                            "interval": "daily"},
            "platform", "Daily spend")
        yield server


class Session:
    """One page on the Explorer, with what it asked the network for."""

    def __init__(self, page: Any, server: LocalKeenServer) -> None:
        self.page = page
        self.server = server
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.errors.append(message.text)
                if message.type == "error" else None)
        page.set_default_timeout(WAIT_MS)
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready=true]")

    def run(self, button: str = "#run") -> None:
        before = int(self.page.get_attribute("#result", "data-run") or 0)
        self.page.click(button)
        self.page.wait_for_selector(f"#result[data-run='{before + 1}']")
        assert self.page.get_attribute("#status", "data-state") == "done", \
            self.page.inner_text("#status")

    def table(self) -> list[list[str]]:
        rows: list[list[str]] = self.page.eval_on_selector_all(
            "#table tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
        return rows

    def raw(self) -> Any:
        return json.loads(self.page.text_content("#raw-json") or "")

    def snippet(self, name: str) -> str:
        text: str = self.page.text_content(f"#snippet-{name}") or ""
        return text

    def choose_collection(self, name: str) -> None:
        self.page.click(f"#collections button[data-collection='{name}']")
        self.page.wait_for_selector(f"#collection-title:has-text('{name}')")


@pytest.fixture(name="explorer")
def explorer_fixture(browser: Any, server: LocalKeenServer) -> Iterator[Session]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    try:
        session = Session(context.new_page(), server)
        yield session
        assert session.errors == []
        # Nothing from another site (no CDN), and no key in any URL the page asked for.
        assert all(url.startswith(server.url + "/") for url in session.requests), \
            session.requests
        for key in (server.read_key, server.master_key, server.write_key):
            assert key is not None
            assert not any(key in url for url in session.requests)
    finally:
        context.close()


def no_keys(server: LocalKeenServer, text: str) -> None:
    for key in (server.read_key, server.master_key, server.write_key):
        assert key is not None and key not in text


def server_env(server: LocalKeenServer, project_id: str, read_key: str) -> dict[str, str]:
    return {"KEEN_BASE_URL": server.url, "KEEN_PROJECT_ID": project_id,
            "KEEN_READ_KEY": read_key}


def run_python(server: LocalKeenServer | dict[str, str], code: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEN_")}
    env.update(server if isinstance(server, dict) else server.environment())
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip())


# --- the tests --------------------------------------------------------------------------------

def test_collections_show_counts_schemas_and_latest_events(explorer: Session,
                                                           server: LocalKeenServer) -> None:
    page = explorer.page
    for name, events in EVENTS.items():
        page.wait_for_selector(f"#collections button[data-collection='{name}'] "
                               f".count:text-is('{len(events)}')")
    explorer.choose_collection("purchases")
    title = f"purchases · {len(EVENTS['purchases'])} events"
    assert page.text_content("#collection-title") == title
    rows = page.eval_on_selector_all("#schema tbody tr",
                                     "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    schema = server.client.get_collection("purchases")["properties"]
    assert dict(rows) == schema
    assert schema["item.name"] == "string" and schema["price"] == "num"
    page.wait_for_function(
        "document.querySelector('#latest-json') && "
        "document.querySelector('#latest-json').textContent.includes('\"platform\"')")
    decoder = json.JSONDecoder()
    text, shown = page.inner_text("#latest-json"), []
    while text.strip():
        event, end = decoder.raw_decode(text.strip())
        shown.append(event)
        text = text.strip()[end:]
    newest = sorted(EVENTS["purchases"], key=lambda e: str(e["keen"]["timestamp"]),
                    reverse=True)[:5]
    assert [e["session"]["id"] for e in shown] == [e["session"]["id"] for e in newest]


def test_count_by_day_and_platform_with_a_filter(explorer: Session,
                                                 server: LocalKeenServer) -> None:
    page = explorer.page
    explorer.choose_collection("purchases")
    page.select_option("#analysis", "count")
    page.fill("#timeframe", "this_7_days")
    page.select_option("#interval", "daily")
    page.select_option("#group-by", ["platform"])
    page.click("#add-filter")
    row = page.locator("#filters .row").last
    row.locator(".filter-property").select_option("price")
    row.locator(".filter-operator").select_option("gte")
    row.locator(".filter-value").type("10")
    explorer.run()

    expected: Counter[tuple[str, str]] = Counter(
        (_day(e), e["platform"]) for e in EVENTS["purchases"] if e["price"] >= 10)
    platforms = sorted({platform for _, platform in expected})
    table = explorer.table()
    header, body = table[0], table[1:]
    assert header[0] == "interval" and sorted(header[1:]) == platforms
    assert [r[0] for r in body] == DAYS
    shown = {(r[0], p): int(r[i + 1]) for r in body for i, p in enumerate(header[1:])}
    assert shown == {(day, p): expected[(day, p)] for day in DAYS for p in platforms}

    # One line per platform, a point per day.
    assert page.get_attribute("#chart", "data-kind") == "line"
    paths = page.eval_on_selector_all("#chart svg path.series",
                                      "ps => ps.map(p => [p.dataset.series, p.getAttribute('d')])")
    assert sorted(name for name, _ in paths) == platforms
    assert all(d.count("M") == 1 and d.count("L") == len(DAYS) - 1 for _, d in paths)
    assert page.locator("#chart svg circle.point").count() == len(DAYS) * len(platforms)
    assert sorted(page.locator("#legend span").all_inner_texts()) == platforms

    cli = explorer.snippet("cli")
    assert cli == ("keen count purchases \\\n  --timeframe this_7_days \\\n  --interval daily "
                   "\\\n  --group-by platform \\\n  --filter 'price gte 10'\n")
    python = explorer.snippet("python")
    curl = explorer.snippet("curl")
    for text in (cli, python, curl):
        no_keys(server, text)
    assert '"$KEEN_READ_KEY"' not in curl and "Authorization: $KEEN_READ_KEY" in curl
    # The Python and curl snippets, run as pasted, give the answer the page shows.
    assert run_python(server, python) == explorer.raw()["result"]
    if shutil.which("curl") and shutil.which("bash"):
        done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True,
                              env={**os.environ, **server.environment()}, timeout=TIMEOUT,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] == explorer.raw()["result"]


def test_sum_by_item_ordered_and_limited_draws_bars(explorer: Session) -> None:
    page = explorer.page
    explorer.choose_collection("purchases")
    page.select_option("#analysis", "sum")
    page.select_option("#target-property", "total")
    page.select_option("#group-by", ["item.name"])
    page.fill("#limit", "2")
    page.click("#run")  # a limit without an order is sent, and the API's refusal shown
    page.wait_for_selector("#status[data-state='error']")
    assert "order_by" in page.inner_text("#status")
    explorer.errors.clear()  # the browser logs the 400
    page.select_option("#order-by", "result")
    page.select_option("#order-direction", "DESC")
    explorer.run()

    sums: dict[str, float] = defaultdict(float)
    for event in EVENTS["purchases"]:
        sums[event["item"]["name"]] += event["total"]
    top = sorted(sums.items(), key=lambda kv: kv[1], reverse=True)[:2]
    body = explorer.table()[1:]
    assert [(name, float(value)) for name, value in body] == top
    bars = page.eval_on_selector_all(
        "#chart svg rect.bar", "rs => rs.map(r => [r.dataset.group, +r.getAttribute('width')])")
    assert [name for name, _ in bars] == [name for name, _ in top]
    assert bars[0][1] > bars[1][1] > 0
    assert "--order-by result:desc \\\n  --limit 2" in explorer.snippet("cli")
    assert "--target-property total" in explorer.snippet("cli")


def test_funnel_steps_draw_a_funnel(explorer: Session) -> None:
    page = explorer.page
    page.select_option("#analysis", "funnel")
    steps = page.locator("#steps .row")
    assert steps.count() == 2  # a funnel starts with two steps to fill in
    page.click("#add-step")
    for i, collection in enumerate(("signups", "logins", "purchases")):
        steps.nth(i).locator(".step-collection").select_option(collection)
        steps.nth(i).locator(".step-actor").select_option("user.id")
    explorer.run()

    actors = [{e["user"]["id"] for e in EVENTS[c]} for c in ("signups", "logins", "purchases")]
    expected = [len(actors[0]), len(actors[0] & actors[1]),
                len(actors[0] & actors[1] & actors[2])]
    body = explorer.table()[1:]
    assert [int(r[3]) for r in body] == expected
    assert [r[1] for r in body] == ["signups", "logins", "purchases"]
    assert page.get_attribute("#chart", "data-kind") == "funnel"
    widths = page.eval_on_selector_all("#chart svg rect.funnel-step",
                                       "rs => rs.map(r => +r.getAttribute('width'))")
    assert len(widths) == 3 and widths[0] > widths[1] > widths[2] > 0
    cli = explorer.snippet("cli")
    steps_json = json.dumps([{"event_collection": c, "actor_property": "user.id"}
                             for c in ("signups", "logins", "purchases")], separators=(",", ":"))
    assert cli == f"keen funnel \\\n  --steps '{steps_json}' \\\n  --timeframe this_7_days\n"


def test_saved_queries_and_datasets_open_and_run(explorer: Session,
                                                 server: LocalKeenServer) -> None:
    page = explorer.page
    page.click("#saved-queries button[data-saved-query='revenue-by-item']")
    page.wait_for_selector("#result[data-run='1']")
    assert page.input_value("#analysis") == "sum"
    assert page.input_value("#target-property") == "total"
    assert page.eval_on_selector("#group-by", "s => [...s.selectedOptions].map(o => o.value)") \
        == ["item.name"]
    sums: dict[str, float] = defaultdict(float)
    for event in EVENTS["purchases"]:
        sums[event["item"]["name"]] += event["total"]
    assert {name: float(v) for name, v in explorer.table()[1:]} == dict(sums)
    assert page.locator("#chart svg rect.bar").count() == len(sums)

    # A multi-analysis: the builder cannot edit its analyses, keeps them and says so.
    page.click("#saved-queries button[data-saved-query='spend-and-buyers']")
    page.wait_for_selector("#result[data-run='2']")
    assert not page.is_hidden("#extra")
    assert "analyses, max_age" in page.inner_text("#extra")
    spend = sum(e["total"] for e in EVENTS["purchases"])
    buyers = len({e["user"]["id"] for e in EVENTS["purchases"]})
    assert {k: float(v) for k, v in explorer.table()[1:]} == {"spend": spend, "buyers": buyers}
    cli = explorer.snippet("cli")
    assert "--analyses '{\"spend\":" in cli and "--max-age 300" in cli
    assert run_python(server, explorer.snippet("python")) == explorer.raw()["result"]

    page.click("#datasets button[data-dataset='daily-spend']")
    page.fill(".dataset-index-value", "ios")
    explorer.run("#dataset-run")
    daily: dict[str, float] = defaultdict(float)
    for event in EVENTS["purchases"]:
        if event["platform"] == "ios":
            daily[_day(event)] += event["total"]
    body = explorer.table()[1:]
    assert [r[0] for r in body] == DAYS
    assert [float(r[1]) for r in body] == [daily[day] for day in DAYS]
    assert page.locator("#chart svg path.series").count() == 1
    cli = explorer.snippet("cli")
    assert cli == ("keen datasets results daily-spend \\\n  --index-by ios \\\n"
                   "  --timeframe this_7_days\n")
    python = explorer.snippet("python")
    no_keys(server, python + explorer.snippet("curl"))
    assert run_python(server, python)["result"] == explorer.raw()["result"]


def test_copy_puts_the_snippet_on_the_clipboard(explorer: Session) -> None:
    page = explorer.page
    page.click("button.copy[data-copy='snippet-cli']")
    page.wait_for_selector("button.copy[data-copy='snippet-cli']:text-is('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == explorer.snippet("cli")
    assert explorer.snippet("cli").startswith("keen count logins \\\n  --timeframe this_7_days")


def test_percentile_select_unique_extraction_and_hostile_values(explorer: Session) -> None:
    page = explorer.page
    explorer.choose_collection("purchases")
    page.select_option("#analysis", "percentile")
    page.select_option("#target-property", "price")
    page.fill("#percentile", "90")
    explorer.run()
    prices = sorted(e["price"] for e in EVENTS["purchases"])
    nearest_rank = prices[max(1, math.ceil(0.9 * len(prices))) - 1]
    assert float(page.inner_text("#chart .metric")) == nearest_rank
    assert "--target-property price \\\n  --percentile 90 \\\n" in explorer.snippet("cli")
    assert 'target_property="price",\n    percentile=90,' in explorer.snippet("python")

    explorer.choose_collection("signups")
    page.select_option("#analysis", "select_unique")
    page.select_option("#target-property", "referrer")
    explorer.run()
    referrers = sorted({e["referrer"] for e in EVENTS["signups"] if e["referrer"] is not None})
    assert HOSTILE in referrers
    assert [row[0] for row in explorer.table()[1:]] == referrers

    page.select_option("#analysis", "count")
    page.select_option("#group-by", ["referrer"])
    explorer.run()
    counts = Counter(e["referrer"] for e in EVENTS["signups"])
    bars = page.eval_on_selector_all("#chart svg rect.bar", "rs => rs.map(r => r.dataset.group)")
    assert sorted(bars) == sorted("null" if r is None else r for r in counts)
    assert {row[0]: int(row[1]) for row in explorer.table()[1:]} == {
        "null" if r is None else r: n for r, n in counts.items()}

    page.select_option("#analysis", "extraction")
    page.fill("#latest", "3")
    explorer.run()
    table = explorer.table()
    assert len(table) == 4 and "user.geo.city" in table[0]
    assert "--latest 3" in explorer.snippet("cli")
    assert page.evaluate("document.body.dataset.pwned") is None
    assert page.locator("img").count() == 0


class _Blank(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!DOCTYPE html><title>another site</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_another_site_cannot_read_the_page_or_its_keys(browser: Any,
                                                       server: LocalKeenServer) -> None:
    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Blank)
    thread = threading.Thread(target=foreign.serve_forever, daemon=True)
    thread.start()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        # "localhost" vs "127.0.0.1": another site, as an attacker's page would be.
        page.goto(f"http://localhost:{foreign.server_address[1]}/")
        outcome = page.evaluate("""async (url) => {
            try {
                const r = await fetch(url, {headers: {Accept: "text/html"}});
                return r.status + " " + await r.text();
            } catch (e) { return "blocked: " + e; }
        }""", server.url + "/")
        no_keys(server, outcome)
        assert outcome.startswith("403 ") or outcome.startswith("blocked")
        framed = page.evaluate("""(url) => new Promise((done) => {
            const frame = document.createElement("iframe");
            frame.src = url;
            frame.onload = () => { try { done(frame.contentDocument.body.innerText); }
                                   catch (e) { done("unreadable"); } };
            document.body.append(frame);
        })""", server.url + "/")
        no_keys(server, framed)
    finally:
        context.close()
        foreign.shutdown()
        foreign.server_close()


def test_an_empty_project_errors_and_switching_projects(browser: Any) -> None:
    other = ProjectConfig(project_id="shop-two", master_key="master-two", read_key="read-two",
                          write_key="write-two")
    with LocalKeenServer(clock=lambda: NOW, projects=[other]) as server:
        shop = server.make_client(project_id="shop-two", write_key="write-two",
                                  read_key="read-two", master_key="master-two")
        shop.add_events({"orders": EVENTS["purchases"][:7]})
        context = browser.new_context()
        try:
            explorer = Session(context.new_page(), server)
            page = explorer.page
            assert page.text_content("#collections") == "No events yet."
            assert page.text_content("#saved-queries") == "None saved."
            assert page.text_content("#datasets") == "None defined."
            page.click("#run")  # refused before any request: nothing to count
            assert page.get_attribute("#status", "data-state") == "error"
            assert "Choose a collection" in page.inner_text("#status")

            page.select_option("#project", "shop-two")
            page.wait_for_selector("#collections button[data-collection='orders'] "
                                   ".count:text-is('7')")
            page.fill("#timeframe", "last_fortnight")
            page.click("#run")
            page.wait_for_selector("#status[data-state='error']")
            assert "(TimeframeDefinitionError)" in page.inner_text("#status")
            page.fill("#timeframe", "this_7_days")
            explorer.run()
            assert page.get_attribute("#chart", "data-kind") == "metric"
            assert page.inner_text("#chart .metric") == "7"
            assert explorer.table() == [["count"], ["7"]]
            # An absolute timeframe typed as START..END, and a timezone.
            page.fill("#timeframe", f"{DAYS[0]}T00:00:00Z..{DAYS[-1]}T00:00:00Z")
            page.fill("#timezone", "Europe/Paris")
            explorer.run()
            before_today = sum(1 for e in EVENTS["purchases"][:7] if _day(e) < DAYS[-1])
            assert explorer.table() == [["count"], [str(before_today)]]
            cli = explorer.snippet("cli")
            assert (f"--timeframe {DAYS[0]}T00:00:00Z..{DAYS[-1]}T00:00:00Z \\\n"
                    "  --timezone Europe/Paris\n") in cli
            assert run_python(server_env(server, "shop-two", "read-two"),
                              explorer.snippet("python")) == before_today
            assert explorer.errors == [message for message in explorer.errors
                                       if "400 (Bad Request)" in message]
            for key in ("read-two", "master-two"):
                assert not any(key in url for url in explorer.requests)
        finally:
            context.close()
