"""Is this a hand radiograph the model can read? Torch-free rules on the upload.

check_radiograph(data) looks at the upload's bytes (colour, DICOM modality and body part)
and its decoded grayscale pixels, and returns a Rejection (a code and a reason a person can
act on) or None. The worker runs it before predicting (services.assessments); it needs
nothing but numpy, Pillow and pydicom, so the upload form could run it too.

The thresholds were chosen by measurement on a corpus (benchmarks/bench_rejection.py):
911 real RSNA radiographs (../shared/data/rsna-sample), pydicom's bundled test files,
scikit-image's sample images and generated blank, noise, text, saturated and cropped
images. A mirrored (right) hand or an upside-down film passes every rule: the rules look at
statistics that do not change under a flip or a rotation by 180 degrees.

Every rule is computed on the image reduced to at most WORK_SIDE pixels a side. A crop of a
film is told apart with the hand locator (core/hand.py): the hand fills the image and runs off
three or four of its edges. What these rules cannot see is left to the out-of-distribution
score on the model's own features (training/ood.py), which the Predictor applies.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from core.hand import HandLocation
from core.hand_memo import hand_location
from core.imageio import decode_image, is_dicom

WORK_SIDE = 256
MIN_SIDE = 64  # pixels on the short side; decode_image already refuses below 32
BLANK_STD = 0.015  # intensity SD (0-1 scale) below which there is nothing to read (real films: >= 0.026)
SATURATED_FRACTION = 0.13  # share of pixels above 0.97: real films 99th percentile 0.018, max 0.122 (of 911)
COLOUR_CHROMA = 0.04  # mean (max - min of R, G, B) / 255: a radiograph saved as RGB has ~0
NOISE_CORRELATION = 0.6  # neighbouring pixels of a radiograph correlate > 0.9 even at 256 px
BRIGHT_BORDER = 0.75  # median of the outer 5% frame: a radiograph's background is dark (real: <= 0.68 but 1 of 911)
# ... and of the whole image: a document or an inverted film is bright all over, while a film with a
# white collimator band along its edges (RSNA 14430: frame 0.99, image 0.09) is dark inside.
# Bright-framed images in the corpus: page 0.71, the clipped films 0.51-1.0, screenshots 0.94.
BRIGHT_MEDIAN = 0.4
# "Mostly cut off": nearly all of the frame and of the image is the (bright) subject. The RSNA
# sample has tightly collimated films with foreground up to 0.96 and frames up to 1.0 covered,
# so only the extreme is refused: crops of a hand are NOT reliably detected by these rules.
CUT_OFF_BORDER = 0.95
CUT_OFF_FOREGROUND = 0.97
# A crop of a hand: the hand found by core.hand fills more than CROP_AREA of the image and its box
# runs off at least CROP_EDGES of the four edges (within CROP_EDGE_TOLERANCE of the side). Measured
# (benchmarks/bench_rejection.py): 5 of 911 real RSNA films, 47 of 60 central quarters of films.
CROP_AREA = 0.55
CROP_EDGES = 3
CROP_EDGE_TOLERANCE = 0.01
# ... and the picture itself runs off those edges: at least CROP_EDGES of the four edge strips
# (EDGE_STRIP of the short side deep) vary along the edge by more than EDGE_STRUCTURE (5th-95th
# percentile range of the strip's profile, linear trend removed). A tightly collimated film whose
# plate the locator takes for the hand has its box on the edges but a plain plate there: the 6 real
# films (of 911) the box rule refused have at most 2 such edges (third-largest range <= 0.09),
# the central quarters of films at least 3 (third-largest >= 0.16).
EDGE_STRIP = 0.02
EDGE_STRUCTURE = 0.12
# Partly clipped white with an extreme contrast: a film exported with a wrong window. Real films:
# intensity SD at most 0.314 (99.5th percentile 0.27); 7 films brightened x3 that the plain
# saturation rule lets through have SD 0.33-0.36 with 10-13% of pixels clipped.
PARTLY_SATURATED = 0.08
HARSH_STD = 0.32

PROJECTION_MODALITIES = {"CR", "DX", "RG", "DR", "OT", ""}
HAND_BODY_PARTS = {"", "HAND", "WRIST", "EXTREMITY", "UPPEREXTREMITY", "UPPER EXTREMITY", "FINGER", "ARM"}


@dataclass(frozen=True)
class Rejection:
    code: str  # too_small, blank, saturated, not_radiograph, other_modality, other_body_part, noise, cut_off
    reason: str  # for the person who uploaded it

    def __str__(self) -> str:
        return self.reason


def check_radiograph(data: bytes, image: np.ndarray | None = None) -> Rejection | None:
    """None when the upload looks like a hand radiograph; otherwise why not.
    `image`: its decoded pixels when the caller already has them (core.imageio.decode_image)."""
    tags = _dicom_tags(data) if is_dicom(data) else {}
    rejection = _check_tags(tags)
    if rejection is not None:
        return rejection
    if not tags and _chroma(data) > COLOUR_CHROMA:
        return Rejection("not_radiograph", "This is a colour image, not a radiograph. Upload the hand radiograph "
                         "itself (DICOM, or a grayscale PNG/JPEG export), not a photograph or a screenshot.")
    image = decode_image(data) if image is None else image
    return check_pixels(image)


def check_pixels(image: np.ndarray) -> Rejection | None:
    """The pixel rules alone, on a decoded (H, W) float image in [0, 1], bone bright."""
    if image.ndim != 2:
        return Rejection("not_radiograph", "The image is a series or volume (several frames or channels), not one "
                         "radiograph. Upload the single hand radiograph.")
    height, width = image.shape
    if min(height, width) < MIN_SIDE:
        return Rejection("too_small", f"The image is only {width}x{height} pixels; a hand radiograph needs at least "
                         f"{MIN_SIDE} pixels a side (upload the original resolution, not a thumbnail).")
    small = reduce(image)
    if float(small.std()) < BLANK_STD:
        return Rejection("blank", "The image is blank (nearly one uniform intensity): there is no hand to read. "
                         "Check the export or the exposure and upload the radiograph again.")
    saturated = float(np.mean(small > 0.97))
    if saturated > SATURATED_FRACTION or (saturated > PARTLY_SATURATED and float(small.std()) > HARSH_STD):
        return Rejection("saturated", "Most of the image is saturated white: the film is overexposed or the "
                         "window is wrong. Upload an export with the full intensity range.")
    if neighbour_correlation(small) < NOISE_CORRELATION:
        return Rejection("not_radiograph", "The image looks like noise or a fine texture, not a radiograph. "
                         "Upload the hand radiograph itself.")
    frame = border(small)
    if float(np.median(frame)) > BRIGHT_BORDER and float(np.median(small)) > BRIGHT_MEDIAN:
        return Rejection("not_radiograph", "The image has a bright background, unlike a hand radiograph (dark "
                         "background, bright bones): it looks like a document, a screenshot, a photograph or an "
                         "inverted film. Upload the radiograph as exported by the X-ray system.")
    threshold = otsu(small)
    if float(np.mean(frame > threshold)) > CUT_OFF_BORDER and float(np.mean(small > threshold)) > CUT_OFF_FOREGROUND:
        return Rejection("cut_off", "The subject fills most of the image and runs over its edges: the film looks "
                         "cut off. Upload the whole radiograph of the hand and wrist.")
    if looks_cropped(hand_location(image), small):  # found once: the orientation reuses it
        return Rejection("cut_off", "The hand fills the image and runs off its edges: this looks like a crop of a "
                         "radiograph, not the whole film. Upload the whole radiograph of the hand and wrist, "
                         "fingertips to the distal forearm.")
    return None


def looks_cropped(location: HandLocation, small: np.ndarray | None = None) -> bool:
    """The located hand fills most of the image and its box runs off three or four edges (and,
    given the reduced image `small`, the picture varies along as many of its edges)."""
    if not location.found or location.box is None:
        return False
    width, height = location.image_size
    left, top, right, bottom = location.box
    tolerance = CROP_EDGE_TOLERANCE
    edges = sum([left <= tolerance * width, top <= tolerance * height,
                 right >= (1 - tolerance) * width, bottom >= (1 - tolerance) * height])
    return (edges >= CROP_EDGES and location.area_share > CROP_AREA
            and (small is None or structured_edges(small) >= CROP_EDGES))


def structured_edges(small: np.ndarray) -> int:
    """How many of the four edges the picture runs off: edge strips whose profile along the edge
    (3-pixel mean, linear trend removed) spans more than EDGE_STRUCTURE (5th-95th percentile)."""
    k = max(2, int(round(min(small.shape) * EDGE_STRIP)))
    count = 0
    for profile in (small[:k].mean(0), small[-k:].mean(0), small[:, :k].mean(1), small[:, -k:].mean(1)):
        if len(profile) < 8:
            continue
        profile = np.convolve(profile, np.ones(3) / 3, mode="valid")
        t = np.arange(len(profile), dtype=float)
        residual = profile - np.polyval(np.polyfit(t, profile, 1), t)
        count += float(np.percentile(residual, 95) - np.percentile(residual, 5)) > EDGE_STRUCTURE
    return count


def features(image: np.ndarray) -> dict:
    """The numbers the rules use (for the benchmark and for tuning)."""
    small = reduce(image)
    frame = border(small)
    return {"std": float(small.std()), "saturated": float(np.mean(small > 0.97)),
            "correlation": neighbour_correlation(small), "border_median": float(np.median(frame)),
            "border_foreground": float(np.mean(frame > otsu(small))), "foreground": float(np.mean(small > otsu(small))),
            "structured_edges": structured_edges(small)}


def reduce(image: np.ndarray) -> np.ndarray:
    """Area-average down to at most WORK_SIDE a side (Pillow's box filter)."""
    from PIL import Image

    height, width = image.shape
    scale = WORK_SIDE / max(height, width)
    if scale >= 1:
        return image.astype(np.float32)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX))


def neighbour_correlation(image: np.ndarray) -> float:
    a, b = image[:, :-1].ravel(), image[:, 1:].ravel()
    if a.std() == 0 or b.std() == 0:
        return 1.0
    return float(np.corrcoef(a, b)[0, 1])


def border(image: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    k = max(1, int(round(min(image.shape) * fraction)))
    return np.concatenate([image[:k].ravel(), image[-k:].ravel(), image[k:-k, :k].ravel(), image[k:-k, -k:].ravel()])


def otsu(image: np.ndarray) -> float:
    hist, edges = np.histogram(image, bins=64, range=(0.0, 1.0))
    p = hist / max(1, hist.sum())
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    total = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total * w0 - m0) ** 2 / (w0 * (1 - w0))
    between = np.nan_to_num(between)
    return float(centres[int(np.argmax(between))])


def _chroma(data: bytes) -> float:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode in {"L", "I", "I;16", "I;16B", "I;16L", "F", "1", "LA"}:
                return 0.0
            image.draft("RGB", (WORK_SIDE, WORK_SIDE))
            rgb = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.float32)
    except Exception:  # noqa: BLE001 - undecodable: decode_image says why
        return 0.0
    return float(np.mean(rgb.max(axis=-1) - rgb.min(axis=-1)) / 255.0)


def _dicom_tags(data: bytes) -> dict:
    import pydicom

    try:
        dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - decode_image reports unreadable files
        return {}
    return {"modality": str(getattr(dataset, "Modality", "") or "").upper().strip(),
            "body_part": str(getattr(dataset, "BodyPartExamined", "") or "").upper().strip(),
            "dicom": True}


def _check_tags(tags: dict) -> Rejection | None:
    if not tags:
        return None
    modality, body_part = tags["modality"], tags["body_part"]
    if modality not in PROJECTION_MODALITIES:
        return Rejection("other_modality", f"This DICOM study is modality {modality}, not a projection radiograph "
                         "(CR or DX). Bone age is read from a plain radiograph of the left hand.")
    if body_part not in HAND_BODY_PARTS:
        return Rejection("other_body_part", f"This radiograph is of the {body_part.lower()}, not the hand. "
                         "Bone age is read from a radiograph of the left hand and wrist.")
    return None
