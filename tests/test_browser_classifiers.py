"""The classifier tabs in headless Chromium: click a real example, check the model's answer, wait
for the Grad-CAM picture, keep a screenshot in ``artifacts/screenshots`` for people to look at."""

from __future__ import annotations

import pytest

from tests.conftest import ARTIFACTS
from tests.test_app_classifiers import needs_weights

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "screenshots"


@pytest.mark.parametrize(
    ("tab", "task", "example", "answer", "picture", "shot"),
    [
        ("MR contrast", "contrast", "0a7d683c5c79a4e8", "T2", "#contrast-cam img", "contrast_tab"),
        (
            "Tumour type",
            "tumor44",
            "100_big_gallery",
            "schwannoma T1C+",  # shown in English (the folder says Schwannoma)
            "#tumor44-cam img",
            "tumor44_tab",
        ),
        (
            "Brain tumour",
            "tumor_detect",
            "Tr-gl_0015",
            "tumor",
            "#tumor-cam img",
            "tumor_detect_tab",
        ),
    ],
)
def test_real_example_click_shows_answer_and_gradcam(
    page, shared_data, tab, task, example, answer, picture, shot
) -> None:
    """A real slice the shipped model held out of training: its answer and its Grad-CAM."""
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
    top = page.locator("[data-testid='label-output-value']:visible").first
    assert top.inner_text().strip() == answer
    # the open tab's own banner (hidden tabs carry theirs too)
    page.locator(".wb-banner:visible", has_text="not for diagnosis").first.wait_for()
