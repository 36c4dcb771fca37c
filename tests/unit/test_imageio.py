"""Decoding of each accepted format, and rejection of bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.imageio import MAX_PIXELS, ImageDecodeError, decode_image

GRADIENT = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, data, tolerance",
    [
        ("8-bit PNG", _encode(Image.fromarray((GRADIENT * 255).round().astype(np.uint8)), "PNG"), 1 / 255),
        ("16-bit PNG", _encode(Image.fromarray((GRADIENT * 65535).round().astype(np.uint16)), "PNG"), 1e-4),
        ("JPEG", _encode(Image.fromarray((GRADIENT * 255).round().astype(np.uint8)), "JPEG", quality=95), 0.03),
        ("RGB PNG", _encode(Image.fromarray(np.stack([(GRADIENT * 255).round().astype(np.uint8)] * 3, -1)), "PNG"), 1 / 255),
        ("RGBA PNG", _encode(Image.fromarray(np.dstack([(GRADIENT * 255).round().astype(np.uint8)] * 3
                                                        + [np.full((48, 64), 255, np.uint8)])), "PNG"), 1 / 255),
    ],
)
def test_accepted_formats_decode_to_gray_unit_range(name, data, tolerance):
    image = decode_image(data)
    assert image.dtype == np.float32 and image.shape == (48, 64), name
    assert np.abs(image - GRADIENT).max() <= tolerance + 1e-6, name


def test_dicom_monochrome1_is_inverted_so_bone_is_bright():
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    pixels = (GRADIENT * 4095).round().astype(np.uint16)
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel, dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 1, 16, 12, 11
    dataset.PixelRepresentation = 0
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.Modality, dataset.PatientSex = "CR", "F"
    dataset.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    image = decode_image(buffer.getvalue())
    assert np.abs(image - (1 - GRADIENT)).max() < 1e-3


def test_file_path_is_accepted(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray((GRADIENT * 255).astype(np.uint8)).save(path)
    assert decode_image(path).shape == (48, 64)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"this is a text file, not a radiograph\n" * 10, "not an image"),
        (_encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8)), "PNG")[:30000],
         "damaged or truncated"),
        (_encode(Image.new("L", (8, 8)), "PNG"), "at least"),
    ],
)
def test_bad_files_are_refused_with_a_reason(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_image(data)


def test_decompression_bomb_is_refused_before_decoding():
    side = int(MAX_PIXELS**0.5) + 100
    bomb = _encode(Image.new("1", (side, side)), "PNG")  # tiny file, huge image
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_image(bomb)


def test_a_12_bit_film_in_a_16_bit_png_uses_the_full_range_and_is_not_blank():
    """Detectors write 12-bit values into 16-bit PNGs; read as 0-65535 such a film is
    almost black and the blank check refused real studies."""
    from core.image_checks import check_radiograph

    rng = np.random.default_rng(0)
    hand = np.zeros((400, 300), dtype=np.float32)
    hand[60:360, 80:220] = 0.6 + 0.3 * rng.random((300, 140))  # a bright object on a dark plate
    twelve_bit = np.round(hand * 4095).astype(np.uint16)
    data = _encode(Image.fromarray(twelve_bit), "PNG")

    decoded = decode_image(data)

    assert decoded.max() > 0.85
    np.testing.assert_allclose(decoded, twelve_bit / 4095.0, atol=1e-4)
    rejection = check_radiograph(data, decoded)
    assert rejection is None or rejection.code != "blank"
