"""The page's words in a real browser and over plain HTTP: the audit view on a phone,
a 404 page, where the token is, and suggestions on a missing session's page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import expect

from sessiongate.config import SessionGateConfig
from tests.browser import PHONE, needs_chromium, refuse_over_http, signed_in
from tests.helpers import INCIDENT_KEY, client_for, invoke, sign_in

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

pytestmark = needs_chromium


async def test_the_audit_view_stacks_its_rows_on_a_phone(
    serve: Serve, config_factory: ConfigFactory, screenshots: Path
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, client_for(gw) as http:
        await refuse_over_http(gw)
        await invoke(http, "sessions_send", {"sessionKey": "agent:atlsa:main", "message": "m"})
        async with signed_in(gw, PHONE) as page:
            await page.goto(gw.url + "/ui/audit")
            await expect(page.locator("#audit-rows tr")).to_have_count(2)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"]
            for label in ("Rule", "Lint", "Suggestions"):  # every column is on screen
                cell = page.locator(f'#audit-rows tr >> nth=1 >> td[data-label="{label}"]')
                box = await cell.bounding_box()
                assert box is not None and box["x"] + box["width"] <= PHONE["width"], label
            keys = page.locator("#audit-rows code.key")
            split = await keys.evaluate_all(
                """keys => keys.flatMap(k => Array.from(k.childNodes)
                  .filter(n => n.nodeType === Node.TEXT_NODE && n.textContent.length > 1)
                  .filter(n => { const r = document.createRange(); r.selectNodeContents(n);
                    return new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top)))
                      .size > 1; })
                  .map(n => n.textContent))"""
            )
            assert await keys.count() >= 4 and split == []  # no key breaks inside a segment
            await page.screenshot(path=screenshots / "phone-audit.png", full_page=True)


async def test_page_404_sign_in_words_and_suggestions_on_a_missing_session(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        form = (await http.get("/ui/signin")).text
        assert "gateway.token" in form and "on the machine the gateway runs on" in form
        await sign_in(http, gw.token)
        missing = await http.get("/ui/nothing/here")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("text/html")
        assert (
            "<h1>Not found</h1>" in missing.text and 'data-code="ROUTE_NOT_FOUND"' in missing.text
        )
        typo = await http.get("/ui/sessions/agent:atlas:mian")
        assert typo.status_code == 400
        assert 'href="/ui/sessions/agent:atlas:main"' in typo.text
        phantom = await http.get(f"/ui/sessions/{INCIDENT_KEY}")
        assert phantom.status_code == 404
        assert (
            "Did you mean" in phantom.text
            and 'href="/ui/sessions/agent:atlas:main"' in phantom.text
        )
        followed = await http.get("/ui/sessions/agent%3Aatlas%3Amain")
        assert followed.status_code == 200
