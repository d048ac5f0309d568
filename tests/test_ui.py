"""Tab helpers without a server: error translation and the Models table."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from workbench.errors import InputError
from workbench.ui.common import guarded, upload_path
from workbench.ui.models import architecture, model_card, model_row


def test_user_mistakes_become_one_line_gradio_errors() -> None:
    @guarded
    def fails() -> None:
        raise InputError("scan.dcm: the file is truncated;\n re-export it.")

    with pytest.raises(gr.Error) as info:
        fails()
    assert info.value.message == "scan.dcm: the file is truncated; re-export it."


def test_unexpected_failures_do_not_leak_details() -> None:
    @guarded
    def crashes(path: str) -> None:
        raise RuntimeError(f"boom while reading {path}")

    with pytest.raises(gr.Error) as info:
        crashes("/uploads/DOE^JOHN.dcm")
    assert "DOE" not in info.value.message and "RuntimeError" in info.value.message


def test_missing_upload_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="no file given"):
        upload_path(None)


def test_architecture_names() -> None:
    seg = {"name": "smp_segmenter", "args": {"arch": "unet", "encoder": "tu-efficientnet_lite0"}}
    ens = {
        "name": "ensemble",
        "args": {
            "members": [
                {"name": "timm_classifier", "args": {"backbone": "efficientnet_lite0"}},
                {"name": "timm_classifier", "args": {"backbone": "efficientnet_lite1"}},
            ]
        },
    }
    assert architecture(seg) == "unet / efficientnet_lite0"
    assert architecture(ens) == "ensemble of efficientnet_lite0, efficientnet_lite1"


def test_models_table_says_how_to_get_a_missing_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_WEIGHTS_DIR", str(tmp_path))
    row = model_row("tumor_seg")
    assert row["weights"] == "missing" and "python train/tumor_seg.py" in row["trained on"]
    assert "python train/tumor_seg.py" in model_card("tumor_seg")[0]


def test_model_card_pictures_go_to_the_gallery() -> None:
    """The contrast card links its confusion matrix and reliability diagram; the page shows the
    files, not dead links."""
    text, pictures = model_card("contrast")
    assert "![" not in text and "in the gallery below" in text
    assert [Path(f).name for f, _ in pictures] == ["confusion.png", "calibration.png"]
    assert [caption for _, caption in pictures] == ["confusion matrix", "reliability diagram"]
    assert all(Path(f).is_file() for f, _ in pictures)
