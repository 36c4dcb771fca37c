"""The working copy: an upload decoded once, at submission, and stored small.

The worker and the pages read these instead of the original, so a 2,000 x 2,500 upload is
decoded once, in the web process, and never again:

- the working copy: grayscale, bone bright, longest side at most WORKING_SIDE pixels, an
  8-bit PNG for 8-bit uploads and a 16-bit PNG for deeper ones (16-bit PNG, DICOM), so no
  intensity level the model's percentile stretch could use is lost; stored uncompressed
  (PNG without filtering or deflate: 1-3 ms to write and to read instead of 30-90 ms and
  15-28 ms at zlib level 1, for 0.9-1.4 MB instead of 0.3-1.0 MB), as only the worker reads it;
- the display copy: 8-bit PNG, longest side at most DISPLAY_SIDE, what /image.png serves,
  compressed (zlib level 1, "up" filter, Huffman coding only: 5-9 ms, about the size of
  Pillow's level 1, which took 12-16 ms).

Both are encoded with OpenCV's PNG writer (opencv-python-headless), which lets the filter
and the zlib strategy be chosen; any PNG reader reads them.

Why 1024 pixels: the largest recipe (`large`) reads 448 px squares. Letterboxed, it needs
448 px on the film's longest side; "resize_crop" needs 512 on the shorter side (1024 x 0.73
= 750 for a 1826 x 2500 film); and a hand crop covering as little as 44% of the film's
longest side still has 448 px. The RSNA films (longest side <= 512 in the sample, about
2,000-2,600 at full size) are all at least twice the largest input the models use.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from core.imageio import ImageDecodeError, decode_gray, reduce_to, to_float

WORKING_SIDE = 1024
DISPLAY_SIDE = 768
# The working copy: stored, not deflated, rows not filtered (only copied and checksummed).
WORKING_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
# The display copy (sent to browsers): zlib level 1 with the "up" filter and Huffman coding only.
DISPLAY_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
               cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]


@dataclass(frozen=True)
class WorkingImage:
    pixels: np.ndarray  # (H, W) uint8 or uint16 (0-65535 is 0-1), longest side <= WORKING_SIDE

    def as_float(self) -> np.ndarray:
        """float32 (H, W) in [0, 1]: what decode_image returns, at the working size."""
        return to_float(self.pixels)

    def png(self) -> bytes:
        return encode_png(self.pixels, WORKING_PNG)

    def display_png(self) -> bytes:
        """8-bit, at most DISPLAY_SIDE a side: the radiograph as the pages show it."""
        small = reduce_to(self.pixels, DISPLAY_SIDE)
        if small.dtype != np.uint8:
            small = np.round(to_float(small) * 255.0).astype(np.uint8)
        return encode_png(small, DISPLAY_PNG)


def upload_is_display_size(upload_path: str, working: WorkingImage) -> bool:
    """A PNG upload no larger than the display size is served as stored (no display copy):
    a working copy at most DISPLAY_SIDE a side was not reduced, so it has the upload's size."""
    return upload_path.endswith(".png") and max(working.pixels.shape) <= DISPLAY_SIDE


def make_working_image(data: bytes) -> WorkingImage:
    """Decode an upload once, reduced to the working size (core.imageio.decode_gray);
    raises ImageDecodeError with the reason when it cannot be read."""
    return WorkingImage(decode_gray(data, WORKING_SIDE))


def read_working_image(png: bytes) -> np.ndarray:
    """A stored working copy as float32 (H, W) in [0, 1]. Its bit depth says the scale:
    16-bit PNGs are 0-65535 (not guessed from their largest value, as uploads are).
    Raises ImageDecodeError when the file is damaged."""
    try:
        with Image.open(io.BytesIO(png), formats=("PNG",)) as image:
            pixels = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for a damaged file
        raise ImageDecodeError(f"the working copy is damaged ({exc})") from exc
    if pixels.dtype != np.uint8:
        pixels = pixels.astype(np.uint16)
    return to_float(pixels)


def encode_png(pixels: np.ndarray, params: list[int]) -> bytes:
    """A PNG of uint8 or uint16 pixels (written big-endian, as PNG wants) with OpenCV's writer:
    grayscale (H, W), or colour (H, W, 3) in OpenCV's BGR order."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels), params)
    if not ok:
        raise ValueError(f"could not encode a {pixels.dtype} {pixels.shape} image as PNG")
    return encoded.tobytes()
