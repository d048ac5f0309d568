"""Real-browser checks: headless Debian Chromium through Playwright, screenshots kept in
``artifacts/screenshots`` for people to look at."""

from __future__ import annotations

import pytest

from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "screenshots"


def open_tab(page, title: str) -> None:
    page.get_by_role("tab", name=title).click()


def test_tumour_tab_example_shows_the_mask(page) -> None:
    open_tab(page, "Brain tumour")
    # the open tab's own banner (hidden tabs carry theirs too)
    page.locator(".wb-banner:visible", has_text="not for diagnosis").first.wait_for()
    page.locator(".gallery-item, button.example, [data-testid='examples'] button, td").filter(
        has_text="tumor_seg_phantom_1"
    ).first.click()
    page.locator("#tumor-overlay img").wait_for(state="visible", timeout=120_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "tumor_tab.png"), full_page=True)
    assert page.locator("#tumor-overlay img").get_attribute("src")
