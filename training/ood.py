"""Out-of-distribution score on the model's own features: is this image like the films the
model was trained on?

The image rules in core/image_checks.py are the first, cheap line (blank, saturated, colour,
noise, bright background, DICOM tags). What they cannot see - a crop of a hand, a grayscale
photograph with a dark border, an untagged CT slice - the model's own features can: the
pooled 512-d backbone features of a hand radiograph lie in a narrow region that the training
films span, and other images land far from it.

Method (chosen by measurement, benchmarks/bench_rejection.py and docs/benchmarks.md):
a Mahalanobis distance under a probabilistic-PCA model of the training split's features
(scikit-learn's PCA: the top COMPONENTS directions with their own variances, the rest of the
space with one pooled noise variance). The threshold is a high quantile (QUANTILE) of the
scores of held-out films: the validation split's, plus out-of-fold scores of the training
split (each fold scored by a model fitted without it), so that ~99.5% of real unseen films
pass. Everything is stored in the checkpoint metadata under "ood" (JSON-able, float16
arrays in base64: ~40 KB).

The score reported with a prediction is the distance divided by the threshold: below 1 is
like the training films, above 1 is refused.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

METHOD = "Mahalanobis distance under probabilistic PCA of the training split's pooled backbone features"
COMPONENTS = 32
QUANTILE = 0.995
FOLDS = 5
# Fewer studies than this in the training split, or held-out scores fewer than MIN_HELD_OUT:
# no OOD statistics (a tiny or test-only model predicts without the check).
MIN_TRAIN = 100
MIN_HELD_OUT = 100

REJECTION_REASON = ("The image does not look like the hand radiographs this model was trained on (its features "
                    "are far from every training film's): it may be another body part, a photograph or "
                    "document, a crop of a film, or an unusual export. Upload the whole left-hand radiograph "
                    "as exported by the X-ray system.")
# Added for a model trained on synthetic radiographs (the demo model): real films are unlike them.
SYNTHETIC_MODEL_HINT = (" This model was trained on SYNTHETIC radiographs (a demonstration model), so real films "
                        "look unlike its training films: register and activate a model trained on real radiographs "
                        "to assess them.")


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.asarray(array, dtype="<f2").tobytes()).decode("ascii")


def _decode(text: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float64).reshape(shape)


def backbone_features(model, squares_uint8, *, batch_size: int = 64, device=None) -> np.ndarray:
    """Pooled backbone features (N, 512) of preprocessed uint8 squares (N, H, W), as the
    model's forward computes them (before the sex input and the head)."""
    import torch

    from training.augment import to_float

    device = device or next(model.parameters()).device
    squares = torch.as_tensor(np.asarray(squares_uint8))
    was_training = model.training
    model.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(squares), batch_size):
            x = to_float(squares[start : start + batch_size]).to(device)
            x = (x.expand(-1, 3, -1, -1) - model.pixel_mean) / model.pixel_std
            outputs.append(model.backbone(x).float().cpu())
    model.train(was_training)
    return torch.cat(outputs).numpy().astype(np.float64) if outputs else np.zeros((0, 512))


@dataclass
class _Gaussian:
    mean: np.ndarray  # (D,)
    basis: np.ndarray  # (k, D), orthonormal rows
    variances: np.ndarray  # (k,)
    noise_variance: float

    @classmethod
    def fit(cls, features: np.ndarray, components: int) -> "_Gaussian":
        from sklearn.decomposition import PCA

        k = int(min(components, features.shape[0] - 1, features.shape[1] - 1))
        pca = PCA(n_components=k, svd_solver="full").fit(features)
        return cls(pca.mean_, pca.components_, pca.explained_variance_, float(max(pca.noise_variance_, 1e-12)))

    def distance(self, features: np.ndarray) -> np.ndarray:
        centred = np.asarray(features, dtype=np.float64) - self.mean
        projected = centred @ self.basis.T
        residual = np.maximum(np.sum(centred**2, axis=1) - np.sum(projected**2, axis=1), 0.0)
        return np.sqrt(np.sum(projected**2 / self.variances, axis=1) + residual / self.noise_variance)


def held_out_scores(train_features: np.ndarray, components: int = COMPONENTS, folds: int = FOLDS,
                    seed: int = 0) -> np.ndarray:
    """Out-of-fold distances of the training features (each fold scored by a fit without it)."""
    order = np.random.default_rng(seed).permutation(len(train_features))
    scores = np.empty(len(train_features))
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        scores[part] = _Gaussian.fit(train_features[rest], components).distance(train_features[part])
    return scores


def fit_ood(train_features: np.ndarray, val_features: np.ndarray | None = None, *,
            components: int = COMPONENTS, quantile: float = QUANTILE, min_train: int = MIN_TRAIN,
            min_held_out: int = MIN_HELD_OUT) -> dict | None:
    """The OOD statistics (JSON-able) from training and validation features, or None with
    too few studies to estimate them."""
    train_features = np.asarray(train_features, dtype=np.float64)
    val_features = np.zeros((0, train_features.shape[1])) if val_features is None else np.asarray(val_features)
    if len(train_features) < min_train:
        return None
    gaussian = _Gaussian.fit(train_features, components)
    held_out = np.concatenate([held_out_scores(train_features, components), gaussian.distance(val_features)])
    if len(held_out) < min_held_out:
        return None
    threshold = float(np.quantile(held_out, quantile))
    k, dim = gaussian.basis.shape
    return {
        "method": METHOD,
        "feature": "pooled backbone features of the preprocessed, un-flipped image",
        "components": int(k),
        "dim": int(dim),
        "n_train": int(len(train_features)),
        "n_val": int(len(val_features)),
        "quantile": quantile,
        "threshold": round(threshold, 4),
        "threshold_from": "out-of-fold training scores and validation scores",
        "val_pass_rate": float(np.mean(gaussian.distance(val_features) <= threshold)) if len(val_features) else None,
        "mean": _encode(gaussian.mean),
        "basis": _encode(gaussian.basis),
        "variances": _encode(gaussian.variances),
        "noise_variance": gaussian.noise_variance,
    }


class OodModel:
    """Applies stored OOD statistics (the "ood" entry of a checkpoint's metadata)."""

    def __init__(self, stats: dict):
        self.stats = stats
        k, dim = stats["components"], stats["dim"]
        self.gaussian = _Gaussian(_decode(stats["mean"], (dim,)), _decode(stats["basis"], (k, dim)),
                                  _decode(stats["variances"], (k,)), float(stats["noise_variance"]))
        self.threshold = float(stats["threshold"])

    @classmethod
    def from_metadata(cls, metadata: dict) -> "OodModel | None":
        stats = metadata.get("ood")
        return cls(stats) if stats else None

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Distance / threshold: <= 1 like the training films, > 1 refused."""
        return self.gaussian.distance(np.atleast_2d(features)) / self.threshold

    def rejected(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) > 1.0


def fit_for_split(model, data, device=None, **kwargs) -> dict | None:
    """OOD statistics of `model` from a TrainingData's train and validation parts (training/train.py)."""
    train_images = data.part("train")[0]
    if len(train_images) < kwargs.get("min_train", MIN_TRAIN):
        return None
    return fit_ood(backbone_features(model, train_images, device=device),
                   backbone_features(model, data.part("val")[0], device=device), **kwargs)


def fit_from_data_dir(model, metadata: dict, data_dir, *, cache_dir=None, **kwargs) -> dict | None:
    """For a checkpoint trained before OOD statistics existed: fit them from its own data
    folder and stored split, as training does now."""
    from training.recipes import Recipe
    from training.train import TrainingData

    recipe = Recipe.from_dict(metadata["recipe"])
    data = TrainingData.prepare(data_dir, recipe, split=metadata["split"], progress=False, cache_dir=cache_dir)
    return fit_for_split(model, data, **kwargs)
