"""One-pass Grad-CAM (training.gradcam.HeadGradCam) against pytorch-grad-cam over the whole
network (GradCamExplainer): the same maps to 1e-5, batched and one image at a time; the
Predictor's one forward pass gives the same bone age as predict_months and the features
of the backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.imageio import decode_image
from training.augment import to_float
from training.gradcam import GradCamExplainer, HeadGradCam
from training.inference import forward_with_features, predict_months
from training.predict import Predictor
from training.rsna import load_records


@pytest.fixture(scope="module")
def study(tiny_model, synthetic_dataset):
    # float32: these tests compare with the float32 references (the precision's own test:
    # tests/integration/test_inference_precision.py)
    predictor = Predictor.from_checkpoint(tiny_model, device="cpu", precision="fp32")
    records = load_records(synthetic_dataset)[:5]
    images = [decode_image(r.image_path) for r in records]
    squares = predictor.preprocess(images)
    male = np.array([r.male for r in records], dtype=np.float32)
    return dict(predictor=predictor, images=images, sexes=[r.sex for r in records], squares=squares, male=male)


def _fast_maps(predictor, squares, male):
    forward = forward_with_features(predictor.model, squares, male, tta=predictor.recipe.tta)
    return HeadGradCam(predictor.model).heatmaps(forward.feature_maps, male, squares.shape[-1])


def test_one_pass_map_equals_pytorch_grad_cam_batched(study):
    predictor, squares, male = study["predictor"], study["squares"], study["male"]
    full = GradCamExplainer(predictor.model).heatmaps(squares, male)
    fast = _fast_maps(predictor, squares, male)
    assert fast.shape == full.shape == (len(squares), *squares.shape[1:]) and fast.dtype == np.float32
    assert full.max() > 0.99  # a real map, not an all-zero one that would match anything
    np.testing.assert_allclose(fast, full, atol=1e-5, rtol=0)


def test_one_pass_map_equals_pytorch_grad_cam_one_at_a_time(study):
    predictor, squares, male = study["predictor"], study["squares"], study["male"]
    full = GradCamExplainer(predictor.model)
    for i in range(len(squares)):
        one, sex = squares[i : i + 1], male[i : i + 1]
        np.testing.assert_allclose(_fast_maps(predictor, one, sex), full.heatmaps(one, sex), atol=1e-5, rtol=0)


def test_predictor_one_pass_gives_the_same_prediction_map_and_features(study):
    predictor, squares, male = study["predictor"], study["squares"], study["male"]
    predictions = predictor.predict(study["images"], study["sexes"], gradcam=True)
    expected_months = predict_months(predictor.model, squares, male, tta=predictor.recipe.tta)
    np.testing.assert_allclose([p.bone_age_months for p in predictions], expected_months, rtol=0, atol=1e-4)
    expected_maps = GradCamExplainer(predictor.model).heatmaps(squares, male)
    np.testing.assert_allclose(np.stack([p.heatmap for p in predictions]), expected_maps, atol=1e-5, rtol=0)
    with torch.no_grad():
        x = to_float(torch.from_numpy(squares))
        backbone_features = predictor.model.backbone((x.expand(-1, 3, -1, -1) - predictor.model.pixel_mean)
                                                     / predictor.model.pixel_std).numpy()
    features = np.stack([p.features for p in predictions])
    assert features.shape == (len(squares), 512) and features.dtype == np.float32
    np.testing.assert_allclose(features, backbone_features, rtol=0, atol=1e-5)
    np.testing.assert_allclose(predictor.features(study["images"]), features, rtol=0, atol=1e-5)
    without = predictor.predict(study["images"], study["sexes"], gradcam=False)
    assert [p.bone_age_months for p in without] == [p.bone_age_months for p in predictions]
    assert all(p.heatmap is None and p.overlay_png is None for p in without)
