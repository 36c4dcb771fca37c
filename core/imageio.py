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


def _decode_pillow(data: bytes) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only the formats radiographs come in: a GIF, TIFF, WebP or BMP is refused here.
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            width, height = image.size
            _check_size(width, height)
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
    return _to_gray_float(image)


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
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        array = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if array.max() > 255 else 255.0
        return np.clip(array / peak, 0.0, 1.0)
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float32)
        lo, hi = float(array.min()), float(array.max())
        return (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA").convert("RGB")
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
