"""A hostile-input corpus through the API: files that lie about their type, bombs,
damaged files, odd pixel formats, formats we do not take, DICOM files of every kind
pydicom ships, huge uploads, malformed bodies and odd characters in text fields.

Each gets either a 202 (a readable radiograph) or a clear 4xx that leaves no row,
no file and no queued task behind; never a 5xx.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from db.session import unit_of_work_factory
from helpers import authed_client, make_png, read_queued_tasks
from openapi_contract import contract_checked
from web import create_app


def _png_bytes(image: Image.Image, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kw)
    return buffer.getvalue()


def _jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG with its frame header (SOF0) rewritten to claim width x height."""
    data = bytearray(_jpeg_bytes(Image.new("L", (64, 64), 128)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _bit_flipped(data: bytes) -> bytes:
    flipped = bytearray(data)
    for position in range(len(data) // 3, len(data) - 16, max(1, len(data) // 40)):
        flipped[position] ^= 0xFF
    return bytes(flipped)


def _gray(size=96, seed=0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((size, size)) * 255).astype("uint8"), mode="L")


def _animated_gif() -> bytes:
    buffer = io.BytesIO()
    frames = [_gray(seed=i).convert("P") for i in range(3)]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def _tiff() -> bytes:
    buffer = io.BytesIO()
    _gray().save(buffer, format="TIFF")
    return buffer.getvalue()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="100" height="100"/></svg>'
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"

# (id, bytes, filename): each must be refused with a 400 that names the image field.
REFUSED = [
    ("svg-named-png", SVG, "hand.png"),
    ("html-named-png", HTML, "hand.png"),
    ("png-named-jpg-but-text", b"GIF89a not really", "hand.jpg"),
    ("png-claiming-100000-square", _png_claiming(100_000, 100_000), "hand.png"),
    ("jpeg-bomb-header", _jpeg_claiming(60_000, 60_000), "hand.jpg"),
    ("truncated-png", make_png(256)[:300], "hand.png"),
    ("truncated-jpeg", _jpeg_bytes(_gray(256))[:400], "hand.jpg"),
    ("bit-flipped-png", _bit_flipped(make_png(256)), "hand.png"),
    ("animated-gif", _animated_gif(), "hand.gif"),
    ("tiff", _tiff(), "hand.tif"),
    ("zero-bytes", b"", "hand.png"),
    ("one-pixel", _png_bytes(Image.new("L", (1, 1))), "hand.png"),
]

# Unusual but readable pixel formats: accepted.
ACCEPTED = [
    ("16-bit-png", _png_bytes(Image.fromarray((np.arange(96 * 96).reshape(96, 96) * 7).astype(np.uint16))), "a.png"),
    ("1-bit-png", _png_bytes(_gray().convert("1")), "a.png"),
    ("palette-png", _png_bytes(_gray().convert("P")), "a.png"),
    ("rgba-png", _png_bytes(_gray().convert("RGBA")), "a.png"),
    ("cmyk-jpeg", _jpeg_bytes(_gray().convert("CMYK")), "a.jpg"),
    ("grayscale-jpeg", _jpeg_bytes(_gray()), "a.jpg"),
    ("jpeg-named-png", _jpeg_bytes(_gray()), "a.png"),
]


@pytest.fixture
def stack(embedded_settings):
    app = contract_checked(create_app(embedded_settings))
    return embedded_settings, authed_client(app)


def _post(client, data: bytes, filename: str, **fields):
    form = {"sex": "F", **fields, "image": (io.BytesIO(data), filename)}
    return client.post("/api/v1/assessments", data=form, content_type="multipart/form-data")


def _nothing_left(settings) -> None:
    with unit_of_work_factory(settings.database_url)() as uow:
        assert uow.assessments.count() == 0, "a row was stored"
    stored = [p for p in settings.files_dir.rglob("*") if p.is_file()]
    assert stored == [], f"files were stored: {stored}"
    assert read_queued_tasks(settings) == [], "a task was queued"


@pytest.mark.parametrize("data, filename", [pytest.param(d, f, id=i) for i, d, f in REFUSED])
def test_hostile_files_are_refused_and_leave_nothing(stack, data, filename):
    settings, client = stack
    response = _post(client, data, filename)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body["fields"]["image"] and "Traceback" not in body["error"]
    _nothing_left(settings)


@pytest.mark.parametrize("data, filename", [pytest.param(d, f, id=i) for i, d, f in ACCEPTED])
def test_unusual_but_readable_images_are_accepted(stack, data, filename):
    _, client = stack
    response = _post(client, data, filename)
    assert response.status_code == 202, response.get_data(as_text=True)[:300]


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(stack):
    settings, client = stack
    response = _post(client, b"\x89PNG\r\n\x1a\n" + b"\x00" * (25 * 1024 * 1024), "huge.png")
    assert response.status_code == 413 and "too large" in response.get_json()["error"]
    _nothing_left(settings)


def test_a_malformed_multipart_body_is_a_4xx(stack):
    settings, client = stack
    body = b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG"  # never closed
    response = client.post("/api/v1/assessments", data=body,
                           content_type="multipart/form-data; boundary=XyZ")
    assert 400 <= response.status_code < 500
    _nothing_left(settings)


@pytest.mark.parametrize("field, value", [
    ("sex", "F\x00"), ("sex", "Ｆ"), ("sex", "\u202eF"),
    ("age_years", "1\x07"), ("age_years", "٣\u0000"), ("age_months", "\ud7ff"),
    ("birth_date", "2014-01-01\x00"), ("study_date", "２０２０-01-01"),
    ("reference", "S-1\x1b[31m"), ("reference", "Jane\u200bDoe<script>"), ("reference", "x" * 65),
])
def test_odd_characters_in_text_fields_are_refused_with_a_message(stack, field, value):
    settings, client = stack
    fields = {"sex": "F", "birth_date": "2014-01-01", "study_date": "2020-01-01"} if "date" in field else {"sex": "F"}
    fields[field] = value
    response = _post(client, make_png(), "a.png", **fields)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    _nothing_left(settings)


def _pydicom_test_files() -> list:
    import warnings

    from pydicom.data import get_testdata_files

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sorted(get_testdata_files("*.dcm"))


@pytest.mark.parametrize("path", _pydicom_test_files(), ids=lambda p: p.rsplit("/", 1)[-1])
def test_every_dicom_pydicom_ships_is_accepted_or_refused_cleanly(stack, path):
    """pydicom's test files: CT and MR slices, compressed transfer syntaxes we may not
    decode, files without pixel data, multi-frame files. None may cause a 5xx."""
    settings, client = stack
    with open(path, "rb") as fh:
        data = fh.read()
    response = _post(client, data, "study.dcm")
    assert response.status_code in (202, 400, 413), response.get_data(as_text=True)[:300]
    if response.status_code != 202:
        assert response.get_json()["fields"], response.get_json()
        _nothing_left(settings)


def test_a_dicom_upload_is_stored_without_the_patients_name(stack):
    import warnings

    from pydicom.data import get_testdata_file

    settings, client = stack
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = open(get_testdata_file("CT_small.dcm"), "rb").read()
    assert b"CompressedSamples^CT1" in original
    response = _post(client, original, "study.dcm")
    assert response.status_code == 202
    (stored,) = [p for p in (settings.files_dir / "uploads").rglob("*") if p.is_file()]
    assert stored.suffix == ".dcm" and b"CompressedSamples" not in stored.read_bytes()
    log_text = "".join(p.read_text(errors="replace") for p in settings.var_dir.rglob("*.log"))
    assert "CompressedSamples" not in log_text
