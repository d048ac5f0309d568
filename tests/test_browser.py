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


def test_models_tab_lists_every_model_and_shows_its_card(page) -> None:
    open_tab(page, "Models")
    # the rows are filled in when the page loads
    page.get_by_text("local: weights/tumor_seg", exact=True).wait_for(timeout=30_000)
    for task in ("tumor_seg", "contrast", "tumor_detect", "tumor44", "hemorrhage", "perfusion"):
        assert (
            page.get_by_text(f"local: weights/{task}", exact=True).filter(visible=True).count() == 1
        )
    dropdown = page.get_by_label("Model card")
    dropdown.click()
    page.get_by_role("option", name="tumor44").click()
    page.get_by_text("44-class brain tumour type", exact=False).first.wait_for(timeout=30_000)
    # the gallery loads its images lazily: bring it into view and wait for both figures
    page.locator("#card-figures").scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('#card-figures img')];"
        " return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        timeout=30_000,
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "models_tab.png"), full_page=True)
    assert page.locator(".wb-banner:visible", has_text="not for diagnosis").count() >= 1


# The lowest contrast ratio (WCAG) between the open tab's banner and any text in it.
BANNER_CONTRAST = """() => {
  const lum = (c) => { const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(v => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const box = [...document.querySelectorAll('.wb-banner')].find(e => e.offsetParent);
  const back = lum(getComputedStyle(box).backgroundColor);
  return Math.min(...[box, ...box.querySelectorAll('*')].map(e => {
    const fore = lum(getComputedStyle(e).color);
    return (Math.max(fore, back) + 0.05) / (Math.min(fore, back) + 0.05); }));
}"""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_banner_is_readable_in_both_themes(page, app_url: str, theme: str) -> None:
    page.goto(f"{app_url}?__theme={theme}", wait_until="load")
    page.locator(".wb-banner:visible").first.wait_for()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"banner_{theme}.png"))
    assert page.evaluate(BANNER_CONTRAST) >= 4.5  # WCAG AA for normal text


def test_a_dead_chromium_is_relaunched_with_a_reason(chromium) -> None:
    """A crash fails the test it happened in; the next test gets a live browser and is told
    why it was relaunched."""
    chromium.get().close()  # disconnected, as a killed or crashed Chromium leaves it
    with pytest.warns(UserWarning, match="relaunched"):
        again = chromium.get()
    page = again.new_page()
    try:
        page.set_content("<p>alive</p>")
        assert page.inner_text("p") == "alive"
    finally:
        page.close()
