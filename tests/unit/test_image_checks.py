"""Image rejection before predicting (core/image_checks.py): one test per reason, and the
cases that must pass (a radiograph-like image, mirrored, upside down). Torch-free."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.image_checks import check_pixels, check_radiograph
from helpers import make_png


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def radiograph_like(size=256, seed=0) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(make_png(size, seed)))).astype(np.float32) / 255


def test_a_radiograph_like_image_passes_and_so_do_its_mirror_and_upside_down():
    image = radiograph_like()
    image = image + np.linspace(0, 0.1, image.shape[0])[:, None]  # not symmetric: flips really differ
    for variant in (image, image[:, ::-1], image[::-1, ::-1], image[::-1]):
        assert check_radiograph(png(np.ascontiguousarray(variant))) is None


@pytest.mark.parametrize("value", [0, 128])
def test_blank(value):
    rejection = check_radiograph(png(np.full((300, 240), value, np.uint8)))
    assert rejection.code == "blank" and "blank" in rejection.reason


def test_saturated():
    white = radiograph_like() * 3  # most of the hand clipped to white
    rejection = check_radiograph(png(white))
    assert rejection.code == "saturated" and "overexposed" in rejection.reason


def test_too_small():
    rejection = check_radiograph(make_png(48))
    assert rejection.code == "too_small" and "48x48" in rejection.reason


def test_random_noise_is_not_a_radiograph():
    noise = np.random.default_rng(0).random((256, 256))
    rejection = check_radiograph(png(noise))
    assert rejection.code == "not_radiograph" and "noise" in rejection.reason


def test_a_colour_photograph_is_not_a_radiograph():
    rng = np.random.default_rng(1)
    photo = np.zeros((200, 200, 3), np.uint8)
    photo[..., 0], photo[..., 1] = 200, 120
    photo[..., 2] = (rng.random((200, 200)) * 60).astype(np.uint8)
    rejection = check_radiograph(png(photo))
    assert rejection.code == "not_radiograph" and "colour" in rejection.reason
    # the same radiograph saved as RGB (R = G = B) is not colour
    gray = (radiograph_like() * 255).astype(np.uint8)
    assert check_radiograph(png(np.stack([gray] * 3, axis=-1))) is None


def test_a_document_is_not_a_radiograph():
    page = Image.new("L", (400, 500), 255)
    draw = ImageDraw.Draw(page)
    for row in range(20, 480, 18):
        draw.text((15, row), "Bone age report: findings and impression " * 2, fill=0)
    rejection = check_radiograph(png(np.asarray(page)))
    assert rejection.code in ("not_radiograph", "saturated")
    assert "document" in rejection.reason or "overexposed" in rejection.reason


def test_mostly_cut_off():
    rng = np.random.default_rng(2)
    image = 0.5 + 0.1 * rng.random((256, 256)).astype(np.float32)  # the subject fills the film to every edge
    image[120:150, 120:150] = 0.02  # with hardly any background left
    image = np.asarray(Image.fromarray(image, mode="F").resize((128, 128)).resize((256, 256)))
    rejection = check_pixels(image)
    assert rejection.code == "cut_off" and "cut off" in rejection.reason


def test_a_ct_slice_is_another_modality():
    from pydicom.data import get_testdata_file

    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    rejection = check_radiograph(data)
    assert rejection.code == "other_modality" and "CT" in rejection.reason


def test_a_chest_radiograph_is_another_body_part():
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = (radiograph_like(128) * 4095).astype(np.uint16)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.Modality, dataset.BodyPartExamined = "CR", "CHEST"
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
    dataset.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    rejection = check_radiograph(data)
    assert rejection.code == "other_body_part" and "chest" in rejection.reason
    dataset.BodyPartExamined = "HAND"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    assert check_radiograph(buffer.getvalue()) is None


def _real_film(name: str) -> np.ndarray:
    from helpers import RSNA_SAMPLE

    path = RSNA_SAMPLE / "boneage-training-dataset" / name
    if not path.is_file():
        pytest.skip(f"the real RSNA sample is not at {RSNA_SAMPLE}; this check needs one of its films")
    return np.asarray(Image.open(path).convert("L")).astype(np.float32) / 255


@pytest.mark.parametrize("name", ["1377.png", "10326.png"])
def test_a_crop_of_a_real_film_is_cut_off_and_the_whole_film_passes(name):
    film = _real_film(name)
    assert check_pixels(film) is None
    height, width = film.shape
    crop = np.ascontiguousarray(film[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4])
    rejection = check_pixels(crop)
    assert rejection.code == "cut_off" and "crop of a radiograph" in rejection.reason


def test_a_partly_clipped_harsh_film_is_saturated():
    film = _real_film("10340.png")
    harsh = np.clip(film * 3, 0, 1)  # 10% clipped white: under the plain saturation limit
    assert float(np.mean(harsh > 0.97)) < 0.13
    rejection = check_pixels(harsh)
    assert rejection.code == "saturated"
