"""The classifier tabs on the real server through gradio_client, with the shipped weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def needs_weights(*tasks: str) -> None:
    for task in tasks:
        if not (ROOT / "weights" / task / "model.safetensors").is_file():
            pytest.skip(f"weights/{task} not trained in this checkout")


@pytest.fixture(scope="module")
def client(app_url: str):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_url, verbose=False)


def picture(path: str) -> np.ndarray:
    return np.asarray(PILImage.open(path).convert("RGB"))


def test_contrast_tab_cross_checks_a_dicom_header(client, shared_data: Path) -> None:
    from gradio_client import handle_file

    needs_weights("contrast")
    dicom = shared_data / "dicom" / "pydicom_3.0.2" / "MR_small.dcm"
    slice_view, cam, label, header, answer, about = client.predict(
        handle_file(str(dicom)), api_name="/contrast_classify"
    )
    shown, heat = picture(slice_view), picture(cam)
    assert heat.shape == shown.shape and np.any(heat != shown)
    assert label["label"] == answer["label"]
    confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert sum(confidences.values()) == pytest.approx(1, abs=1e-3)
    assert answer["header"]["contrast"] == "T2"
    assert "Header says T2" in header
    assert ("agree." in header) == (answer["label"] == "T2")
    assert "weights/contrast" in about


def test_tumour_type_tab_gives_top5_and_marginals(client) -> None:
    from gradio_client import handle_file

    needs_weights("tumor44")
    example = EXAMPLES / "tumor44_phantom_meningioma_T1C+.png"
    slice_view, cam, top5, kind, contrast, about = client.predict(
        handle_file(str(example)), api_name="/tumor44_classify"
    )
    assert picture(cam).shape == picture(slice_view).shape
    assert len(top5["confidences"]) == 5
    shown = [c["confidence"] for c in top5["confidences"]]
    assert shown == sorted(shown, reverse=True)
    contrasts = {c["label"]: c["confidence"] for c in contrast["confidences"]}
    assert set(contrasts) == {"T1", "T1C+", "T2"}
    assert sum(contrasts.values()) == pytest.approx(1, abs=1e-3)  # a marginal over all 44
    assert kind["confidences"][0]["confidence"] >= shown[0] - 1e-6  # a type sums its classes
    assert "weights/tumor44" in about
    names = [c["label"] for c in (*top5["confidences"], *kind["confidences"])]
    assert all(n == n.lower() or n.endswith(("T1", "T1C+", "T2")) for n in names)
    assert not {"Ependimoma", "Neurocitoma", "Papiloma", "_NORMAL"} & {n.split()[0] for n in names}


def test_tumour_tab_votes_then_segments(client) -> None:
    from gradio_client import handle_file

    needs_weights("tumor_detect", "tumor_seg")
    example = EXAMPLES / "tumor_detect_phantom_glioma.jpg"
    slice_view, overlay, measures, _about, verdict, votes, cam = client.predict(
        handle_file(str(example)), "soft", api_name="/tumor_detect"
    )
    assert verdict["label"] in {"tumor", "no_tumor"}
    assert [row[0] for row in votes["data"]] == [
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    ]
    assert picture(cam).shape == picture(slice_view).shape
    if verdict["label"] == "tumor":
        assert "tumor_found" in measures and "area_px" in measures
    else:
        assert measures["segmentation"].startswith("skipped")
        assert np.array_equal(picture(overlay), picture(slice_view))


def test_tumour_tab_says_when_segmentation_disagrees_with_the_vote(client, shared_data) -> None:
    """A real held-out glioma slice: the ensemble finds the tumour, the phantom-trained
    segmentation model draws nothing, and the measurements say so instead of staying silent."""
    from gradio_client import handle_file

    needs_weights("tumor_detect", "tumor_seg")
    glioma = shared_data / "datasets/brain_tumor_mri/Training/glioma/Tr-gl_0015.jpg"
    *_, measures, _about, verdict, _votes, _cam = client.predict(
        handle_file(str(glioma)), "hard", api_name="/tumor_detect"
    )
    assert verdict["label"] == "tumor"
    assert measures["tumor_found"] is False
    assert measures["segmentation"].startswith("no tumour pixels, though the ensemble voted")
