"""The control page in a real browser (Debian's chromium driven by Playwright) against a
real gateway on a loopback port.

Set SESSIONGATE_UI_SCREENSHOTS=docs/screenshots to refresh the committed screenshots;
otherwise they go to the test's tmp dir.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import (
    expect,
)

from sessiongate.config import SessionGateConfig
from tests.browser import (
    DESKTOP,
    PHONE,
    Console,
    chromium,
    needs_chromium,
    refuse_over_http,
    send_from_the_page,
    signed_in,
)
from tests.helpers import INCIDENT_KEY

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

pytestmark = needs_chromium


async def test_sign_in_refuses_a_wrong_token_and_sets_a_strict_cookie(
    serve: Serve, config_factory: ConfigFactory, screenshots: Path
) -> None:
    async with serve(config_factory()) as gw, chromium() as browser:
        page = await browser.new_page(viewport=DESKTOP)  # type: ignore[arg-type]
        console = Console(page)
        response = await page.goto(gw.url + "/")
        assert response is not None and page.url == gw.url + "/ui/signin?next=/ui/"
        assert response.headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in response.headers["content-security-policy"]
        await page.get_by_label("Gateway token").fill("not-the-token")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("not this gateway's token")
        assert "/ui/signin" in page.url
        await page.screenshot(path=screenshots / "signin-refused.png")
        await page.get_by_label("Gateway token").fill(gw.token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        cookie = (await page.context.cookies())[0]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
        assert gw.token not in await page.content()
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await page.goto(gw.url + "/ui/sessions")
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert console.errors == []


async def test_sessions_table_lists_the_startup_sessions(
    serve: Serve, config_factory: ConfigFactory, screenshots: Path
) -> None:
    async with serve(config_factory()) as gw, signed_in(gw) as page:
        await page.get_by_role("link", name="Sessions").click()
        rows = page.locator("table.sessions tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.filter(has_text="agent:atlas:main")).to_contain_text("startup")
        await expect(rows.filter(has_text="agent:peggy:main")).to_contain_text("startup")
        await page.get_by_label("Agent").select_option("peggy")
        await page.get_by_role("button", name="Filter").click()
        await expect(rows).to_have_count(1)
        assert "agent=peggy" in page.url
        await page.get_by_role("link", name="agent:peggy:main").click()
        await expect(page.get_by_role("heading", name="Provenance")).to_be_visible()


async def test_a_refusal_offers_the_suggestion_and_its_button_delivers(
    serve: Serve, config_factory: ConfigFactory, screenshots: Path
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, signed_in(gw) as page:
        await send_from_the_page(page, "status of the deploy?", must_exist=True)
        refusal = page.locator("section.error")
        await expect(refusal).to_contain_text("SESSION_NOT_FOUND")
        await expect(refusal).to_contain_text(INCIDENT_KEY)
        await expect(refusal).to_contain_text("dmScope=main")
        await page.screenshot(path=screenshots / "send-refused.png", full_page=True)
        await page.get_by_role("button", name="Send to agent:atlas:main").click()
        await expect(page.locator("section.result.ok")).to_contain_text("agent:atlas:main")
        assert await gw.gateway.store.find(INCIDENT_KEY) is None
        history = await gw.gateway.store.history("agent:atlas:main")
        assert [m.content for m in history if m.role == "user"] == ["status of the deploy?"]


async def test_a_phantom_is_listed_by_doctor_and_repaired_from_the_page(
    serve: Serve, config_factory: ConfigFactory, screenshots: Path
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": True})
    async with serve(config) as gw, signed_in(gw) as page:
        await send_from_the_page(page, "where do I write?", must_exist=False)
        await expect(page.locator("section.result.ok")).to_contain_text(INCIDENT_KEY)
        store = gw.gateway.store
        phantom = await store.history(INCIDENT_KEY)
        before = await store.history("agent:atlas:main")
        assert len(phantom) == 2  # the message and its reply

        await page.get_by_role("link", name="Sessions").click()
        await expect(page.locator("tr.phantom")).to_contain_text(INCIDENT_KEY)
        await page.screenshot(path=screenshots / "sessions.png", full_page=True)
        await page.get_by_role("link", name=INCIDENT_KEY).click()
        await expect(page.get_by_text("Phantom:")).to_be_visible()
        await page.screenshot(path=screenshots / "session-phantom.png", full_page=True)

        await page.get_by_role("link", name="Doctor").click()
        finding = page.locator("article.finding")
        await expect(finding).to_have_count(1)
        await expect(finding).to_contain_text(INCIDENT_KEY)
        await expect(finding).to_contain_text("agent:peggy:main")  # who created it
        await page.screenshot(path=screenshots / "doctor.png", full_page=True)
        await page.get_by_role("link", name="Repair…").click()
        await expect(page.locator("table.moves tbody tr")).to_have_count(2)
        await page.screenshot(path=screenshots / "doctor-plan.png", full_page=True)
        assert await store.history("agent:atlas:main") == before  # the dry run wrote nothing
        await page.get_by_role("button", name="Repair now").click()
        await expect(page.locator("#healthy")).to_be_visible()

        await page.get_by_role("link", name="Doctor").click()
        await expect(page.locator("#healthy")).to_be_visible()
        after = await store.history("agent:atlas:main", limit=100)
        recovered = [m for m in after if m.meta.get("recoveredFrom") == INCIDENT_KEY]
        assert [m.content for m in recovered] == [m.content for m in phantom]
        assert len(after) == len(before) + len(phantom)
        await page.goto(gw.url + "/ui/sessions/agent:atlas:main")
        await expect(page.get_by_text(INCIDENT_KEY).first).to_be_visible()  # aliased here
        await page.screenshot(path=screenshots / "session-repaired.png", full_page=True)
        await page.get_by_role("link", name="Overview").click()
        await expect(page.get_by_text("0 phantom(s), 0 split brain(s)")).to_be_visible()
        await page.screenshot(path=screenshots / "overview.png", full_page=True)


async def test_a_refusal_by_another_client_appears_in_the_audit_view_live(
    serve: Serve, config_factory: ConfigFactory, screenshots: Path
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, signed_in(gw) as page:
        await page.get_by_role("link", name="Audit").click()
        await expect(page.locator("#live-status")).to_have_text("live")
        await expect(page.locator("#audit-rows tr")).to_have_count(0)
        await refuse_over_http(gw)
        row = page.locator("#audit-rows tr")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("rejected")
        await expect(row).to_contain_text(INCIDENT_KEY)
        await expect(row).to_contain_text("agent:atlas:main")  # the suggestion
        await page.screenshot(path=screenshots / "audit.png", full_page=True)
        await page.get_by_label("Decision").select_option("warned")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator("#live-status")).to_have_text("live")
        await expect(page.locator("#audit-rows tr")).to_have_count(0)
        await refuse_over_http(gw)  # rejected: filtered out of a "warned" view
        await page.get_by_label("Decision").select_option("rejected")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator("#audit-rows tr")).to_have_count(2)


async def test_a_session_view_shows_new_messages_live(
    serve: Serve, config_factory: ConfigFactory, screenshots: Path
) -> None:
    async with serve(config_factory()) as gw, signed_in(gw) as page:
        await page.goto(gw.url + "/ui/sessions/agent:atlas:main")
        await expect(page.locator("#live-status")).to_have_text("live")
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
            body = {
                "tool": "sessions_send",
                "args": {"sessionKey": "agent:atlas:main", "message": "ping from elsewhere"},
            }
            assert (await http.post("/tools/invoke", json=body)).status_code == 200
        messages = page.locator("#transcript li")
        await expect(messages).to_have_count(2)
        await expect(messages.first).to_contain_text("ping from elsewhere")
        await expect(page.locator("#message-count")).to_have_text("2 message(s)")
        await page.screenshot(path=screenshots / "session.png", full_page=True)


async def test_every_view_works_at_phone_width(
    serve: Serve, config_factory: ConfigFactory, screenshots: Path
) -> None:
    async with serve(config_factory()) as gw, signed_in(gw, PHONE) as page:
        for name in ("Sessions", "Audit", "Doctor", "Send", "Overview"):
            await page.get_by_role("link", name=name, exact=True).click()
            await expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name} scrolls sideways at 390 px ({width} px)"
            await page.screenshot(path=screenshots / f"phone-{name.lower()}.png", full_page=True)
        await page.keyboard.press("Tab")  # the skip link comes first for keyboard users
        await expect(page.locator("a.skip")).to_be_focused()


async def test_deleting_from_the_page_shows_the_plan_then_leaves_a_tombstone(
    serve: Serve, config_factory: ConfigFactory, screenshots: Path
) -> None:
    key = "agent:atlas:cron:nightly#1"
    async with serve(config_factory()) as gw, signed_in(gw) as page:
        await gw.gateway.create_session(key, "cli", "test")
        await page.get_by_role("link", name="Sessions").click()
        await page.get_by_role("link", name=key).click()
        await page.get_by_role("link", name="Delete…").click()
        plan = page.locator("#lifecycle-plan")
        await expect(plan).to_contain_text("Erase its transcript")
        await expect(plan).to_contain_text("SESSION_DELETED")
        await page.screenshot(path=screenshots / "lifecycle-delete-plan.png", full_page=True)
        assert await gw.gateway.store.find(key) is not None  # the plan changed nothing
        await page.set_viewport_size(PHONE)  # type: ignore[arg-type]
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the plan scrolls sideways at 390 px ({width} px)"
        await page.screenshot(path=screenshots / "phone-lifecycle-delete-plan.png", full_page=True)
        await page.get_by_label("Reason").fill("asked to be forgotten")
        await page.get_by_role("button", name="Delete now").click()
        await expect(page.locator("#lifecycle-done")).to_contain_text("a tombstone remains")
        assert await gw.gateway.store.find(key) is None
        tombstone = await gw.gateway.store.find_tombstone(key)
        assert tombstone is not None and tombstone.reason == "asked to be forgotten"
