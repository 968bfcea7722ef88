"""Refresh docs/explorer.png, the README's picture of the Explorer page.

Needs the browser extra and the OS's Chromium (``pip install -e ".[browser]"``,
``apt-get install chromium``). Run from the repository root::

    python docs/explorer_screenshot.py
"""

from __future__ import annotations

import random
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from playwright.sync_api import sync_playwright

from keen.server import LocalKeenServer

NOW = datetime(2026, 3, 11, 15, 30, tzinfo=timezone.utc)
OUT = Path(__file__).resolve().parent / "explorer.png"


def events() -> dict[str, list[dict[str, object]]]:
    rng = random.Random(3)
    items = [("sku-1", "Mug", 12.5), ("sku-2", "Shirt", 25), ("sku-3", "Poster", 8),
             ("sku-4", "Hoodie", 49)]
    purchases, signups = [], []
    for _ in range(400):
        when = NOW - timedelta(days=rng.randrange(14), hours=rng.randrange(15),
                               minutes=rng.randrange(60))
        user = f"u{rng.randrange(120):03d}"
        signups.append({"user": {"id": user}, "keen": {"timestamp": when.isoformat()}})
        if rng.random() < 0.6:
            item_id, name, price = rng.choice(items)
            purchases.append({"user": {"id": user}, "item": {"id": item_id, "name": name},
                              "price": price, "quantity": rng.randrange(1, 4),
                              "platform": rng.choices(["web", "ios", "android"], [5, 3, 2])[0],
                              "keen": {"timestamp": when.isoformat()}})
    return {"purchases": purchases, "signups": signups}


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs chromium (apt-get install chromium)", file=sys.stderr)
        return 1
    with LocalKeenServer(clock=lambda: NOW) as server, sync_playwright() as playwright:
        server.client.add_events(events())
        server.client.saved_queries.create("revenue-by-item", {"query": {
            "analysis_type": "sum", "event_collection": "purchases",
            "target_property": "price", "timeframe": "this_14_days", "group_by": "item.name"}})
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1180, "height": 900})
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready=true]")
        page.click("#collections button[data-collection='purchases']")
        page.fill("#timeframe", "this_14_days")
        page.select_option("#interval", "daily")
        page.select_option("#group-by", ["platform"])
        page.click("#add-filter")
        row = page.locator("#filters .row").last
        row.locator(".filter-property").select_option("price")
        row.locator(".filter-operator").select_option("gte")
        row.locator(".filter-value").fill("10")
        page.click("#run")
        page.wait_for_selector("#result[data-run='1']")
        page.screenshot(path=str(OUT), clip={"x": 0, "y": 0, "width": 1180, "height": 790})
        browser.close()
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
