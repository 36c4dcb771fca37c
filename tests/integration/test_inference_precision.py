"""The Predictor's precision: "auto" is bfloat16 autocast on a CPU with bfloat16 arithmetic and
float32 elsewhere; the backbone runs in that precision, the head in float32, so the months are not
rounded to bfloat16's steps and stay close to float32's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.imageio import decode_image
from training.inference import forward_with_features
from training.precision import Precision, cpu_multiplies_bf16
from training.predict import Predictor
from training.rsna import load_records

CPU = torch.device("cpu")


def test_auto_is_bfloat16_exactly_where_the_cpu_multiplies_bfloat16():
    expected = "bf16" if cpu_multiplies_bf16() else "fp32"
    assert Precision.resolve(CPU, "auto").dtype == expected
    assert Precision.resolve(CPU, "fp32").dtype == "fp32"
    assert Precision.resolve(CPU, "bf16").dtype == "bf16"


@pytest.fixture(scope="module")
def films(synthetic_dataset):
    records = load_records(synthetic_dataset)[:8]
    return [decode_image(r.image_path) for r in records], [r.sex for r in records]


def test_bfloat16_backbone_keeps_the_months_close_to_float32(tiny_model, films):
    images, sexes = films
    fp32 = Predictor.from_checkpoint(tiny_model, device="cpu", precision="fp32")
    bf16 = Predictor.from_checkpoint(tiny_model, device="cpu", precision="bf16")
    exact = np.array([p.bone_age_months for p in fp32.predict(images, sexes, gradcam=False)])
    fast = bf16.predict(images, sexes, gradcam=True)
    exact_maps = np.stack([p.heatmap for p in fp32.predict(images, sexes, gradcam=True)])
    months = np.array([p.bone_age_months for p in fast])
    # bfloat16 keeps 8 significant bits: a few tenths of a month at most on a film, and the
    # head in float32 means the months are not quantised (a bfloat16 head moved in 0.5-month steps)
    assert np.abs(months - exact).max() < 2.0, (months, exact)
    assert np.abs(months - exact).mean() < 0.5
    assert len({round(float(m) % 0.5, 3) for m in months}) > 1
    for prediction in fast:  # the map and the features come out in float32, as with float32
        assert prediction.heatmap.dtype == np.float32 and prediction.features.dtype == np.float32
    maps = np.stack([p.heatmap for p in fast])
    assert exact_maps.max() > 0.99  # real maps to compare with
    # the same regions light up: the maps (each scaled to 0-1) agree closely on average
    assert np.abs(maps - exact_maps).mean() < 0.05, np.abs(maps - exact_maps).mean(axis=(1, 2))


def test_the_head_runs_in_float32_on_the_bfloat16_backbones_activations(tiny_model, films):
    """The months are the float32 head applied to the (bfloat16) backbone's activations, to
    float32 rounding: a head under bfloat16 autocast would be off by up to a quarter of a month."""
    images, sexes = films
    predictor = Predictor.from_checkpoint(tiny_model, device="cpu", precision="bf16")
    squares = predictor.preprocess(images)
    male = np.array([s == "M" for s in sexes], dtype=np.float32)
    forward = forward_with_features(predictor.model, squares, male, tta=False, precision=predictor.precision)
    assert forward.feature_maps.dtype == torch.float32
    with torch.no_grad():
        head = predictor.model.months_from_feature_map(forward.feature_maps, torch.from_numpy(male)).numpy()
    np.testing.assert_allclose(forward.months, head, rtol=0, atol=1e-4)


def test_training_precision_auto_is_float32_on_a_cpu_unless_bfloat16_is_asked_for():
    cpu = torch.device("cpu")
    assert Precision.for_training(cpu) == Precision("fp32", True)
    assert Precision.for_training(cpu, "bf16", "0") == Precision("bf16", False)
    assert Precision.for_training(cpu, "fp32", "1").torch_dtype is None
    assert Precision.for_training(cpu, "bf16").torch_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        Precision.for_training(cpu, "fp16")
