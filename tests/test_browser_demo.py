"""A real browser uses the demo: two Chromium tabs load the page from
``python -m wsserver``, echo text and binary, and chat with each other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from headless_chromium import chromium
from serverproc import ServerProcess, running

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def demo() -> Iterator[ServerProcess]:
    with running(["-m", "wsserver", "--host", "127.0.0.1", "--port", "0"]) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def open_tab(browser: Browser, port: int) -> Page:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"http://127.0.0.1:{port}/")
    expect(page.locator("#echo-state")).to_have_text("open")
    return page


def join(page: Page, name: str) -> None:
    page.fill("#chat-name", name)
    page.click("#chat-join")
    expect(page.locator("#chat-state")).to_have_text("joined")


def test_echo_text_and_binary_in_the_browser(browser: Browser, demo: ServerProcess) -> None:
    page = open_tab(browser, demo.port)
    try:
        page.fill("#echo-input", "héllo wörld")
        page.click("#echo-send-text")
        echoed = page.locator('#echo-log li[data-dir="in"][data-kind="text"]')
        expect(echoed).to_have_text(["← héllo wörld"])
        page.fill("#echo-input", "AB")
        page.click("#echo-send-binary")
        # binary came back as binary (an ArrayBuffer), not as text
        expect(page.locator('#echo-log li[data-dir="in"][data-kind="binary"]')).to_have_text(
            ["← binary, 2 bytes: 41 42"]
        )
    finally:
        page.close()


def test_chat_between_two_tabs(browser: Browser, demo: ServerProcess) -> None:
    ada, grace = open_tab(browser, demo.port), open_tab(browser, demo.port)
    try:
        join(ada, "ada")
        join(grace, "grace")
        expect(ada.locator("#chat-online")).to_have_text("2")
        expect(ada.locator('#chat-log li[data-kind="notice"]')).to_have_text(["ada joined", "grace joined"])

        ada.fill("#chat-input", "hello grace")
        ada.click("#chat-send")
        expect(grace.locator('#chat-log li[data-kind="message"]')).to_have_text(["ada: hello grace"])

        grace.fill("#chat-input", "hi ada ✓")
        grace.press("#chat-input", "Enter")
        for page in (ada, grace):
            expect(page.locator('#chat-log li[data-kind="message"]')).to_have_text(
                ["ada: hello grace", "grace: hi ada ✓"]
            )
    finally:
        grace.close()
    expect(ada.locator("#chat-online")).to_have_text("1")
    expect(ada.locator('#chat-log li[data-kind="notice"]').last).to_have_text("grace left")
    ada.close()
