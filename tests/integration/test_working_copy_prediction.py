"""The model's answer from the stored working copy against its answer from the original
upload (a real checkpoint, tiny_model): the same for uploads within the working size (the
real sample's radiographs); for full-resolution uploads, close to the answer from a float
area average of the original at the working size: the 8-bit copy rounds each pixel to one
grey level, which moves this barely trained tiny model by up to about 0.5 months (the model
trained on the real sample: at most 0.21 months on 12 re-encoded films), so the bound is 1
month. How far either is from the full-size original is printed (a 1-pixel difference in
the letterboxed width, from rounding the aspect ratio, moves a weak model more)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.imageio import decode_image
from core.working_image import make_working_image, read_working_image
from helpers import RSNA_SAMPLE


@pytest.fixture(scope="module")
def predictor(tiny_model):
    from training.predict import Predictor

    return Predictor.from_checkpoint(tiny_model, device="cpu")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _uploads(synthetic_dataset, size: int | None) -> list[bytes]:
    real = sorted((RSNA_SAMPLE / "boneage-training-dataset").glob("*.png"))[:4]
    paths = real or sorted((synthetic_dataset / "boneage-training-dataset").glob("*.png"))[:4]
    uploads = []
    for path in paths:
        image = Image.open(path).convert("L")
        if size:  # a full-resolution film: the longest side `size` pixels
            scale = size / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        uploads.append(_png(image))
    return uploads


def _months(predictor, images) -> np.ndarray:
    return np.array([p.bone_age_months for p in predictor.predict(images, ["F"] * len(images), gradcam=False)])


def test_an_upload_within_the_working_size_gives_the_same_answer(predictor, synthetic_dataset, one_thread):
    uploads = _uploads(synthetic_dataset, None)
    original = _months(predictor, [decode_image(d) for d in uploads])
    working = _months(predictor, [read_working_image(make_working_image(d).png()) for d in uploads])
    assert np.array_equal(original, working)


def test_a_full_resolution_upload_gives_the_answer_of_its_area_average(predictor, synthetic_dataset, one_thread):
    uploads = _uploads(synthetic_dataset, 2500)
    stored = [read_working_image(make_working_image(d).png()) for d in uploads]
    averaged = []
    for data, copy in zip(uploads, stored):
        height, width = copy.shape
        full = Image.fromarray(decode_image(data), mode="F")
        averaged.append(np.asarray(full.resize((width, height), Image.Resampling.BOX)))
    working, average = _months(predictor, stored), _months(predictor, averaged)
    original = _months(predictor, [decode_image(d) for d in uploads])
    print(f"|working - area average| {np.abs(working - average).max():.3f} months; "
          f"|working - full-size original| mean {np.abs(working - original).mean():.3f}, "
          f"max {np.abs(working - original).max():.3f} months")
    assert np.abs(working - average).max() <= 1.0
