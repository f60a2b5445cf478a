"""Helpers of the browser tests: Debian's chromium driven by Playwright, signed in to a gateway."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response, async_playwright, expect

from tests.conftest import RunningGateway
from tests.helpers import INCIDENT_KEY

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None and os.environ.get("CI", "").lower() != "true",
    reason="chromium is not installed (scripts/test.sh installs it)",
)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class Console:
    """Every console error and uncaught exception of a page.

    A page answered with an error status on purpose (a refused send is a 404 page,
    a wrong token a 401 page) makes chromium log "Failed to load resource" for that
    document; those are the page speaking, not a failure, and are the only ones let
    through. An asset, fetch or WebSocket that fails still counts.
    """

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.documents: set[str] = set()
        page.on("console", self._message)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("response", self._response)

    def _response(self, response: Response) -> None:
        if response.request.is_navigation_request():
            self.documents.add(response.url)

    def _message(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "warning"):
            return
        deliberate = message.text.startswith("Failed to load resource")
        if deliberate and message.location.get("url") in self.documents:
            return
        self.errors.append(f"{message.type}: {message.text} at {message.location}")


@contextlib.asynccontextmanager
async def signed_in(gw: RunningGateway, viewport: dict[str, int] = DESKTOP) -> AsyncIterator[Page]:
    """A browser page signed in to the gateway; fails the test on any console error."""
    async with chromium() as browser:
        context = await browser.new_context(viewport=viewport, reduced_motion="reduce")  # type: ignore[arg-type]
        page = await context.new_page()
        console = Console(page)
        await page.goto(gw.url + "/")
        await page.get_by_label("Gateway token").fill(gw.token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        yield page
        assert console.errors == []


async def send_from_the_page(page: Page, message: str, must_exist: bool) -> None:
    """peggy addresses the incident key from the Send view."""
    await page.get_by_role("link", name="Send").click()
    await page.get_by_label("As caller").fill("agent:peggy:main")
    await page.get_by_label("To session key").fill(INCIDENT_KEY)
    await page.get_by_label("Message").fill(message)
    await page.get_by_label("Must exist").set_checked(must_exist)
    await page.get_by_role("button", name="Send", exact=True).click()


async def refuse_over_http(gw: RunningGateway) -> None:
    """Another client (not the page) sends to the incident key and is refused."""
    headers = {"authorization": f"Bearer {gw.token}"}
    async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
        body = {
            "tool": "sessions_send",
            "args": {"sessionKey": INCIDENT_KEY, "message": "hi"},
            "sessionKey": "agent:peggy:main",
        }
        response = await http.post("/tools/invoke", json=body)
    assert response.status_code == 404
