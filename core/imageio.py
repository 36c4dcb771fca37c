"""Decoding radiographs from what users have into one grayscale float array.

Accepted: 8- and 16-bit grayscale PNG, JPEG, RGB(A) images of any size, and DICOM
(core.dicom: modality and VOI LUTs applied, MONOCHROME1 inverted so bone is always
bright). Everything else, and absurdly large images (decompression bombs), raises
ImageDecodeError with a message that says what was wrong.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

# A real hand radiograph is at most ~4k x 4k; 40 megapixels leaves room and still
# refuses a decompression bomb before its pixels are allocated.
MAX_PIXELS = 40_000_000
MIN_SIDE = 32
ACCEPTED_FORMATS = ("PNG", "JPEG")


class ImageDecodeError(ValueError):
    """The file is not a radiograph we can read; the message says why."""


def is_dicom(data: bytes) -> bool:
    """A DICOM Part 10 file: 128-byte preamble, then "DICM"."""
    return len(data) > 132 and data[128:132] == b"DICM"


def sniff_suffix(data: bytes) -> str:
    """The file name suffix for an upload's bytes (.png, .jpg, .dcm or .bin)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if is_dicom(data):
        return ".dcm"
    return ".bin"


def decode_image(source: bytes | str | Path) -> np.ndarray:
    """Decode to a float32 array (H, W) in [0, 1], bone bright."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    if not data:
        raise ImageDecodeError("the file is empty")
    if is_dicom(data):
        from core.dicom import decode_dicom  # pydicom is imported only for DICOM uploads

        return decode_dicom(data)
    return _decode_pillow(data)


def decode_gray(source: bytes | str | Path, max_side: int | None = None) -> np.ndarray:
    """Decode to grayscale integers, bone bright: uint8 for 8-bit sources, uint16 (0-65535
    is 0-1) for deeper ones, reduced while decoding so the longest side is at most
    `max_side` (never enlarged). A JPEG is decoded at a reduced DCT scale (Pillow's
    `draft`) and any image is area-averaged down in its integer mode, so no full-size
    float array is made for 8-bit PNG and JPEG. to_float(decode_gray(x)) == decode_image(x)
    for PNG and JPEG when nothing is reduced. Raises ImageDecodeError like decode_image."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    if not data:
        raise ImageDecodeError("the file is empty")
    if is_dicom(data):
        gray = _float_to_uint16(decode_image(data))
    elif (gray := _gray_png_by_opencv(data)) is None:
        image = _open_pillow(data, max_side)
        if image.mode == "F":
            gray = _float_to_uint16(_to_gray_float(image))
        else:
            gray = _to_gray_integers(image)
    return reduce_to(gray, max_side) if max_side else gray


def to_float(gray: np.ndarray) -> np.ndarray:
    """decode_gray's integers as float32 in [0, 1]."""
    peak = 255.0 if gray.dtype == np.uint8 else 65535.0
    return gray.astype(np.float32) / peak


def reduce_to(gray: np.ndarray, max_side: int) -> np.ndarray:
    """Area-average an integer image down so its longest side is at most max_side."""
    height, width = gray.shape
    if max(height, width) <= max_side:
        return gray
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(gray)
    # reducing_gap: whole-factor box reduction first (fast, in C on the integers), then the
    # box filter for the rest; for 16-bit Pillow has no reduce(), so the box filter alone.
    gap = 2.0 if gray.dtype == np.uint8 else None
    return np.asarray(image.resize(size, Image.Resampling.BOX, reducing_gap=gap))


def _float_to_uint16(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _decode_pillow(data: bytes) -> np.ndarray:
    return _to_gray_float(_open_pillow(data))


def _gray_png_by_opencv(data: bytes) -> np.ndarray | None:
    """A grayscale 8- or 16-bit PNG (how radiographs are exported) decoded by OpenCV's
    libpng, which takes about 20% less CPU than Pillow's decoder (78 vs 98 ms for a 2,500 px
    film), to the integers _to_gray_integers gives. None for any other file, and for one that
    OpenCV cannot decode to exactly the image Pillow's reading of its header describes: Pillow
    then decodes it, and says what is wrong. The header's checks (format, size, decompression
    bombs) are Pillow's, as for every upload."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    image = _open_pillow(data, load=False)
    if image.mode not in ("L", "I;16") or "transparency" in image.info:
        return None
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    expected = np.uint8 if image.mode == "L" else np.uint16
    if pixels is None or pixels.dtype != expected or pixels.shape != (image.height, image.width):
        return None
    return pixels if image.mode == "L" else _levels_in_use(pixels)


def _open_pillow(data: bytes, max_side: int | None = None, *, load: bool = True) -> Image.Image:
    """Open, check the size before any pixel is decoded, and load (unless `load` is False);
    a JPEG at the smallest DCT scale that still gives at least `max_side` on its longest side."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only the formats radiographs come in: a GIF, TIFF, WebP or BMP is refused here.
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            width, height = image.size
            _check_size(width, height)
            if max_side and image.format == "JPEG" and max(width, height) > max_side:
                scale = max_side / max(width, height)
                image.draft(image.mode, (max(1, round(width * scale)), max(1, round(height * scale))))
            if load:
                image.load()
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"the image is too large to be a radiograph ({exc})") from exc
    except Image.DecompressionBombWarning as exc:
        raise ImageDecodeError(f"the image is too large to be a radiograph ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            "the file is not an image we can read (PNG, JPEG or DICOM expected)"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"the image is damaged or truncated ({exc})") from exc
    return image


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageDecodeError(
            f"the image is too large: {width}x{height} pixels, more than the {MAX_PIXELS:,} allowed; "
            "downscale it before uploading"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageDecodeError(
            f"the image is only {width}x{height} pixels; a radiograph needs at least "
            f"{MIN_SIDE} pixels a side"
        )


def _to_gray_float(image: Image.Image) -> np.ndarray:
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float32)
        lo, hi = float(array.min()), float(array.max())
        return (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
    return to_float(_to_gray_integers(image))


def _levels_in_use(array: np.ndarray) -> np.ndarray:
    """A 16- or 32-bit integer image: uint8 when no value is above 255, else uint16 scaled so
    that the highest value the bits in use can hold is 65535."""
    peak = int(array.max())
    if peak > 255:
        # A 10-, 12- or 14-bit film is often saved in a 16-bit PNG: stretch the bits in use
        # to the full range, or a 12-bit film reads as nearly black (0-0.06).
        full = (1 << max(peak.bit_length(), 9)) - 1
        if full == 65535 and array.dtype == np.uint16:  # all 16 bits in use: the stretch is the identity
            return array
        return (np.clip(array, 0, full).astype(np.uint32) * 65535 // full).astype(np.uint16)
    return np.clip(array, 0, 255).astype(np.uint8)


def _to_gray_integers(image: Image.Image) -> np.ndarray:
    """uint8, or uint16 when the image has more than 8 bits in use (values above 255),
    scaled so that the highest value the bits in use can hold is 65535."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        return _levels_in_use(np.asarray(image))
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA").convert("RGB")
    return np.asarray(image.convert("L"))
