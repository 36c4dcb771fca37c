"""Robustness of the image pipeline on real RSNA studies (skipped without the sample).

The same radiograph re-encoded as users send it (16-bit PNG, RGB PNG, JPEG, DICOM-like
16-bit with a different window) must give the same or nearly the same bone age.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.imageio import decode_image
from training.predict import Predictor
from training.rsna import load_records

from helpers import RSNA_SAMPLE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_studies():
    if not RSNA_SAMPLE.is_dir():
        pytest.skip(f"the real RSNA sample is not at {RSNA_SAMPLE}; the robustness check needs it")
    return load_records(RSNA_SAMPLE)[:4]


def _reencode(path, how: str) -> bytes:
    pixels = np.asarray(Image.open(path).convert("L"))
    buffer = io.BytesIO()
    if how == "png16":
        Image.fromarray(pixels.astype(np.uint16) * 257).save(buffer, format="PNG")
    elif how == "rgb":
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(buffer, format="PNG")
    elif how == "jpeg":
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    elif how == "upscaled":
        Image.fromarray(pixels).resize((pixels.shape[1] * 3, pixels.shape[0] * 3), Image.BICUBIC).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("how, tolerance_months", [("png16", 0.05), ("rgb", 0.05), ("jpeg", 3.0), ("upscaled", 3.0)])
def test_re_encoded_real_studies_predict_alike(tiny_model, real_studies, how, tolerance_months):
    predictor = Predictor.from_checkpoint(tiny_model)
    sexes = [r.sex for r in real_studies]
    original = predictor.predict([decode_image(r.image_path) for r in real_studies], sexes, gradcam=False)
    variant = predictor.predict([decode_image(_reencode(r.image_path, how)) for r in real_studies], sexes,
                                gradcam=False)
    for a, b in zip(original, variant):
        assert np.isfinite(b.bone_age_months)
        assert abs(a.bone_age_months - b.bone_age_months) <= tolerance_months, how
