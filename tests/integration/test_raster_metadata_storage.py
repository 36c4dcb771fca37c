"""A PNG or JPEG whose metadata names the patient, submitted through the API (the service's
submit_assessment behind it), leaves the name in no stored file: the upload is stored
without its text chunks, EXIF, XMP, comments and trailing bytes, and its pixels are exactly
the uploaded ones. The metadata cases themselves: tests/unit/test_raster_metadata.py."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from core.imageio import decode_image
from db.session import unit_of_work_factory
from helpers import authed_client, make_png
from openapi_contract import contract_checked
from web import create_app


@pytest.fixture
def client(embedded_settings):
    return authed_client(contract_checked(create_app(embedded_settings)))


def _film() -> Image.Image:
    return Image.open(io.BytesIO(make_png(size=128, seed=3)))


def png_naming_the_patient() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", "Patient: Doe^Jane")
    info.add_itxt("Description", "Doe^Jane, left hand")
    buffer = io.BytesIO()
    _film().save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def jpeg_naming_the_patient() -> bytes:
    exif = Image.Exif()
    exif[0x013B] = "Doe^Jane"  # Artist
    exif[0x010E] = "Hand radiograph of Doe^Jane"  # ImageDescription
    buffer = io.BytesIO()
    _film().save(buffer, format="JPEG", quality=95, exif=exif.tobytes(), comment=b"Patient: Doe^Jane")
    return buffer.getvalue()


def _submit(client, data: bytes, filename: str):
    return client.post("/api/v1/assessments", data={"image": (io.BytesIO(data), filename), "sex": "F"},
                       content_type="multipart/form-data")


def _stored(settings) -> dict[str, bytes]:
    return {str(p.relative_to(settings.var_dir)): p.read_bytes()
            for p in settings.var_dir.rglob("*") if p.is_file()}


@pytest.mark.parametrize("make, filename", [(png_naming_the_patient, "hand.png"),
                                            (jpeg_naming_the_patient, "hand.jpg")])
def test_no_stored_file_names_the_patient_and_the_pixels_are_the_uploaded_ones(client, embedded_settings,
                                                                              make, filename):
    original = make()
    assert original.count(b"Doe^Jane") >= 2
    response = _submit(client, original, filename)
    assert response.status_code == 202, response.get_json()
    assessment_id = response.get_json()["id"]

    stored = _stored(embedded_settings)
    assert not [name for name, data in stored.items() if b"Doe" in data]
    with unit_of_work_factory(embedded_settings.database_url)() as uow:
        row = uow.assessments.get(assessment_id)
        upload = embedded_settings.files_dir / row.image_path
        working = embedded_settings.files_dir / row.working_image_path
    assert upload.read_bytes() != original and len(upload.read_bytes()) < len(original)
    np.testing.assert_array_equal(decode_image(upload.read_bytes()), decode_image(original))
    np.testing.assert_array_equal(decode_image(working.read_bytes()), decode_image(original))  # 128 px: unreduced
    served = client.get(f"/api/v1/assessments/{assessment_id}/image.png")
    assert served.status_code == 200 and b"Doe" not in served.get_data()


def test_a_png_whose_chunks_cannot_be_followed_is_refused_and_nothing_stored(client, embedded_settings):
    """Pillow stops reading after the image data, so it decodes a PNG with a broken chunk
    before IEND; what follows cannot be told apart, so the file is refused, not stored."""
    good = make_png(size=96)
    broken_chunk = struct.pack(">I", 4) + b"\x00\x01\x02\x03" + b"Doe!" + struct.pack(">I", zlib.crc32(b"Doe!"))
    damaged = good[:-12] + broken_chunk + good[-12:]
    decode_image(damaged)  # readable as an image
    response = _submit(client, damaged, "hand.png")
    assert response.status_code == 400
    assert "the PNG file is damaged: a chunk's type is not four letters" in response.get_json()["fields"]["image"]
    assert not [p for p in embedded_settings.files_dir.rglob("*") if p.is_file()]
    assert not list(embedded_settings.queue_messages_dir.glob("*.msg"))
    with unit_of_work_factory(embedded_settings.database_url)() as uow:
        assert uow.assessments.recent(10) == []
