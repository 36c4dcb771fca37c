"""PNG and JPEG metadata (text chunks, EXIF, XMP, IPTC, comments, bytes after the image)
is stripped at byte level before an upload is stored (core.deidentify.strip_raster_metadata):
no "Doe" is left, and the file decodes to exactly the same pixels."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from core.deidentify import deidentify, strip_raster_metadata
from core.imageio import ImageDecodeError, decode_gray, decode_image

NAME = b"Doe^Jane"


def _film(size=(80, 64), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[0], 0:size[1]] / max(size)
    blob = np.exp(-(((xx - 0.4) / 0.2) ** 2 + ((yy - 0.5) / 0.3) ** 2))
    return np.clip(0.1 + 0.7 * blob + rng.normal(0, 0.03, size), 0, 1)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_metadata(image: Image.Image) -> bytes:
    """tEXt, zTXt and iTXt written by Pillow, then eXIf, tIME and a private chunk spliced in
    after IHDR, and text after IEND."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", "Patient: Doe^Jane")
    info.add_text("Comment", "Doe^Jane, born 2014-03-27", zip=True)
    info.add_itxt("Description", "Doe^Jane hand", lang="en", tkey="Beschreibung")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, dpi=(150, 150))
    data = buffer.getvalue()
    exif = Image.Exif()
    exif[0x013B] = "Doe^Jane"  # Artist
    extra = (_chunk(b"eXIf", exif.tobytes()) + _chunk(b"tIME", b"\x07\xea\x0b\x1b\x0c\x00\x00")
             + _chunk(b"prVt", b"Doe^Jane private"))
    after_ihdr = 8 + 25
    return data[:after_ihdr] + extra + data[after_ihdr:] + b"Doe^Jane trailing"


def _chunk_kinds(png: bytes) -> list[bytes]:
    kinds, position = [], 8
    while position < len(png):
        length = struct.unpack(">I", png[position:position + 4])[0]
        kinds.append(png[position + 4:position + 8])
        position += 12 + length
    return kinds


def _jpeg_with_metadata(image: Image.Image, **options) -> bytes:
    """EXIF (with an Artist and a description), a comment, XMP (APP1), IPTC (APP13) and an
    ICC-like APP2 spliced in after the JFIF segment, and bytes after the end."""
    exif = Image.Exif()
    exif[0x013B] = "Doe^Jane"  # Artist
    exif[0x010E] = "Hand of Doe^Jane"  # ImageDescription
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), comment=b"Patient Doe^Jane", **options)
    data = buffer.getvalue()
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><dc:creator>Doe^Jane</dc:creator></x:xmpmeta>"
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0c\x1c\x02\x50\x00\x08Doe^Jane"
    segments = b"".join(b"\xff" + bytes([marker]) + struct.pack(">H", len(p) + 2) + p
                        for marker, p in ((0xE1, xmp), (0xED, iptc), (0xE2, b"ICC_PROFILE\x00\x01\x01Doe^Jane")))
    first_end = 2 + 2 + struct.unpack(">H", data[4:6])[0]
    assert data[2:4] in (b"\xff\xe0", b"\xff\xee")  # JFIF, or Adobe's for CMYK
    return data[:first_end] + segments + data[first_end:] + b"Doe^Jane trailing"


def _segment_markers(jpeg: bytes) -> list[int]:
    markers, position = [], 2
    while position < len(jpeg):
        marker = jpeg[position + 1]
        markers.append(marker)
        if marker == 0xD9:
            break
        length = struct.unpack(">H", jpeg[position + 2:position + 4])[0]
        position += 2 + length
        if marker == 0xDA:  # skip the scan's data to the next marker
            while not (jpeg[position] == 0xFF and jpeg[position + 1] not in (0x00, *range(0xD0, 0xD8))):
                position += 1
    return markers


def _same_pixels(before: bytes, after: bytes) -> None:
    np.testing.assert_array_equal(decode_image(after), decode_image(before))
    np.testing.assert_array_equal(decode_gray(after), decode_gray(before))
    with Image.open(io.BytesIO(before)) as a, Image.open(io.BytesIO(after)) as b:
        assert (a.mode, a.size) == (b.mode, b.size)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("mode", ["L", "I;16", "RGB", "P"])
def test_png_text_exif_time_and_trailing_bytes_are_gone_and_the_pixels_stay(mode):
    film = _film()
    if mode == "I;16":
        image = Image.fromarray((film * 4095).astype(np.uint16))  # a 12-bit film in a 16-bit PNG
    else:
        image = Image.fromarray((film * 255).astype(np.uint8), mode="L").convert(mode)
    if mode == "P":
        image.info["transparency"] = 0  # a tRNS chunk, which decoding uses
    original = _png_with_metadata(image)
    assert original.count(b"Doe") >= 5 or b"zTXt" in original
    stripped = strip_raster_metadata(original)
    assert b"Doe" not in stripped and b"2014" not in stripped
    kinds = _chunk_kinds(stripped)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    assert not {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME", b"prVt"} & set(kinds)
    assert b"pHYs" in kinds and ((b"tRNS" in kinds) == (mode == "P"))
    _same_pixels(original, stripped)
    assert strip_raster_metadata(stripped) == stripped


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"restart_marker_blocks": 4},
                                     {"subsampling": 2, "quality": 70}],
                         ids=["baseline", "progressive", "restart-markers", "subsampled"])
@pytest.mark.parametrize("mode", ["L", "RGB", "CMYK"])
def test_jpeg_exif_xmp_iptc_comments_and_trailing_bytes_are_gone_and_the_pixels_stay(mode, options):
    image = Image.fromarray((_film((120, 96)) * 255).astype(np.uint8), mode="L").convert(mode)
    original = _jpeg_with_metadata(image, **options)
    assert original.count(b"Doe^Jane") >= 6
    stripped = strip_raster_metadata(original)
    assert b"Doe" not in stripped
    markers = _segment_markers(stripped)
    assert markers[0] == (0xEE if mode == "CMYK" else 0xE0) and markers[-1] == 0xD9 and 0xDA in markers
    assert not {0xE1, 0xE2, 0xED, 0xFE} & set(markers)
    assert (0xEE in markers) == (mode == "CMYK")  # Adobe's colour-transform segment is kept
    if options.get("progressive"):
        assert markers.count(0xDA) > 1
    _same_pixels(original, stripped)
    assert strip_raster_metadata(stripped) == stripped


def test_a_jfif_thumbnail_is_dropped_and_the_density_kept():
    image = Image.fromarray((_film() * 255).astype(np.uint8), mode="L")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", dpi=(300, 300))
    plain = buffer.getvalue()
    length = struct.unpack(">H", plain[4:6])[0]
    thumbnail = bytes(range(2 * 2 * 3))  # a 2x2 RGB thumbnail in the JFIF segment
    jfif = plain[6:6 + 12] + b"\x02\x02" + thumbnail
    with_thumbnail = plain[:4] + struct.pack(">H", len(jfif) + 2) + jfif + plain[4 + length:]
    stripped = strip_raster_metadata(with_thumbnail)
    assert stripped == plain  # the JFIF segment is back to 16 bytes, the rest unchanged
    with Image.open(io.BytesIO(stripped)) as reopened:
        assert reopened.info["dpi"] == (300, 300)


def test_files_without_metadata_are_unchanged():
    image = Image.fromarray((_film() * 255).astype(np.uint8), mode="L")
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        assert strip_raster_metadata(buffer.getvalue()) == buffer.getvalue()
    assert strip_raster_metadata(b"GIF89a...") == b"GIF89a..."


def test_deidentify_strips_png_and_jpeg_uploads():
    image = Image.fromarray((_film() * 255).astype(np.uint8), mode="L")
    for original in (_png_with_metadata(image), _jpeg_with_metadata(image)):
        stored = deidentify(original)
        assert b"Doe" not in stored
        np.testing.assert_array_equal(decode_image(stored), decode_image(original))


def test_a_file_that_stops_before_its_end_marker_gets_one():
    image = Image.fromarray((_film() * 255).astype(np.uint8), mode="L")
    png, jpeg = io.BytesIO(), io.BytesIO()
    image.save(png, format="PNG")
    image.save(jpeg, format="JPEG")
    png, jpeg = png.getvalue(), jpeg.getvalue()
    assert strip_raster_metadata(png[:-12]) == png  # no IEND chunk
    assert strip_raster_metadata(jpeg[:-2]) == jpeg  # no EOI marker


@pytest.mark.parametrize("damage", ["png-chunk-past-end", "png-bad-chunk-type", "jpeg-segment-past-end"])
def test_a_file_whose_structure_cannot_be_followed_is_refused(damage):
    image = Image.fromarray((_film() * 255).astype(np.uint8), mode="L")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if damage.startswith("jpeg") else "PNG")
    data = buffer.getvalue()
    if damage == "png-chunk-past-end":
        data = data[:33] + _chunk(b"tEXt", b"Patient\x00Doe^Jane")[:-6]
    elif damage == "png-bad-chunk-type":
        data = data[:33] + b"\x00\x00\x00\x04\x00\x01\x02\x03Doe!" + data[33:]
    else:
        data = data[:2] + b"\xff\xfe\xff\xf0Doe^Jane"
    with pytest.raises(ImageDecodeError, match="damaged"):
        strip_raster_metadata(data)
