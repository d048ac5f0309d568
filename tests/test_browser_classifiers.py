"""The classifier tabs in headless Chromium: click an example, wait for the Grad-CAM picture,
keep a screenshot in ``artifacts/screenshots`` for people to look at."""

from __future__ import annotations

import pytest

from tests.conftest import ARTIFACTS
from tests.test_app_classifiers import needs_weights

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "screenshots"


@pytest.mark.parametrize(
    ("tab", "task", "example", "picture", "shot"),
    [
        ("MR contrast", "contrast", "contrast_phantom_T2", "#contrast-cam img", "contrast_tab"),
        ("Tumour type", "tumor44", "tumor44_phantom_meningioma", "#tumor44-cam img", "tumor44_tab"),
        (
            "Brain tumour",
            "tumor_detect",
            "tumor_detect_phantom_glioma",
            "#tumor-cam img",
            "tumor_detect_tab",
        ),
    ],
)
def test_example_click_shows_gradcam(page, tab, task, example, picture, shot) -> None:
    needs_weights(task)
    page.get_by_role("tab", name=tab).click()
    page.locator(".gallery-item, button.example, [data-testid='examples'] button, td").filter(
        has_text=example
    ).first.click()
    page.locator(picture).wait_for(state="visible", timeout=180_000)
    page.wait_for_timeout(1000)  # let the labels render beside the picture
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    assert page.locator(picture).get_attribute("src")
    # the open tab's own banner (hidden tabs carry theirs too)
    page.locator(".wb-banner:visible", has_text="not for diagnosis").first.wait_for()
