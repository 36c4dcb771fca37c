"""How a trained model is named and labelled, wherever it is shown.

A model's name is its recipe and the first 8 hex digits of its checkpoint's SHA-256,
so the same file always has the same name. A model trained on synthetic data always
carries SYNTHETIC_LABEL: a label a person adds is shown beside it, never instead.
"""

from __future__ import annotations

SYNTHETIC_LABEL = "synthetic demo model, not for clinical use"


def model_name(recipe_name: str, checkpoint_sha256: str) -> str:
    return f"{recipe_name}-{checkpoint_sha256[:8]}"


def model_label(label: str | None, *, synthetic: bool) -> str | None:
    """The label to show: the warning first for synthetic models, then the user's label."""
    label = (label or "").strip() or None
    if not synthetic:
        return label
    if label is None or label == SYNTHETIC_LABEL:
        return SYNTHETIC_LABEL
    if SYNTHETIC_LABEL in label:
        return label
    return f"{SYNTHETIC_LABEL}; {label}"
