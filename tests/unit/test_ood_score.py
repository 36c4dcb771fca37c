"""The out-of-distribution score on model features (training/ood.py): fitted on features of
one distribution, it passes ~99.5% of new draws of it, refuses features from elsewhere, and
survives the trip through the checkpoint's JSON metadata. Numpy and scikit-learn only."""

from __future__ import annotations

import json

import numpy as np

from training.ood import OodModel, fit_ood


def features(n: int, seed: int, shift: float = 0.0, dim: int = 64) -> np.ndarray:
    """Correlated features of one 'kind' of image: a few directions of variation plus a little noise."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(0).normal(size=(8, dim))  # the same low-dimensional structure every call
    latent = rng.normal(size=(n, 8))
    return latent @ mixing + 0.3 * rng.normal(size=(n, dim)) + 2.0 + shift


def test_new_draws_pass_and_other_features_are_refused():
    stats = fit_ood(features(600, 1), features(150, 2), components=8)
    model = OodModel(json.loads(json.dumps(stats)))  # as stored in model.json
    alike = model.scores(features(2000, 3))
    assert 0.98 <= np.mean(~model.rejected(alike)) <= 1.0
    shifted = model.scores(features(200, 4, shift=1.5))
    assert np.all(model.rejected(shifted))
    other = np.random.default_rng(5).random((200, 64)) * 4  # unstructured features, same range
    assert np.all(model.rejected(model.scores(other)))
    assert stats["n_train"] == 600 and stats["n_val"] == 150 and stats["components"] == 8
    assert stats["threshold"] > 0 and stats["val_pass_rate"] >= 0.98


def test_the_score_is_the_distance_over_the_threshold_and_small_enough_to_store():
    stats = fit_ood(features(300, 1, dim=512), features(60, 2, dim=512))
    assert len(json.dumps(stats)) < 60_000  # float16 arrays in base64, not a 512 x 512 matrix
    model = OodModel(stats)
    x = features(5, 7, dim=512)
    assert np.allclose(model.scores(x) * model.threshold, model.gaussian.distance(x))
    assert model.scores(x[0]).shape == (1,)


def test_too_few_studies_give_no_statistics():
    assert fit_ood(features(50, 1), features(50, 2)) is None  # training split under MIN_TRAIN
    assert fit_ood(features(120, 1), None, min_held_out=200) is None
    assert OodModel.from_metadata({"recipe": {}}) is None  # a checkpoint from before OOD statistics
