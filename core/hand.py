"""Where is the hand on the film? Torch-free localisation for the crop and the image checks.

locate_hand(gray) finds the hand without labels: an Otsu intensity threshold on the film
reduced to WORK_SIDE pixels, a small morphological opening (cuts thin plate edges and text off
the hand), the largest connected component that is not the plate itself, and the laterality
marker and lettering left out because they are separate small components. When the threshold
picks up a lighter collimated plate (a near-rectangular component), the threshold is raised
inside it (Otsu again on its pixels) until the hand separates.

The orientation comes from where the forearm leaves the film (the border the hand touches
over the longest stretch); a hand lying wholly inside the film is oriented by its fingers
(the end of its long axis whose cross-sections cut the most separate runs of foreground).

The box is returned in the input's pixels. `rotation_degrees` is the counter-clockwise
rotation that makes the fingers point up: np.rot90(gray, rotation_degrees // 90) or
PIL's Image.rotate(rotation_degrees, expand=True).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from core import morphology

# Bumped whenever a rule or threshold below changes the boxes: caches of cropped images
# (training/cache.py) are keyed on it.
LOCATOR_VERSION = 7
WORK_SIDE = 256  # the film is reduced to at most this many pixels a side before any rule
MARGIN_FRACTION = 0.06  # margin around the hand's box, as a share of the box's longer side
MIN_CONTRAST = 0.03  # 1st-99th percentile spread (0-1 scale) below which there is nothing to find
MIN_AREA_SHARE = 0.04  # a hand covers at least this share of the film (RSNA: >= ~0.1)
MIN_SEED_SHARE = 0.01  # its bones alone (before the soft tissue is added) at least this
PLATE_SOLIDITY = 0.9  # a component filling this much of its convex hull is a plate, not a hand
MAX_RETHRESHOLD = 3
SOFT_TISSUE_GROWTH = 6.0  # the soft tissue may grow the bony mask at most this much
SOFT_TISSUE_REACH = 0.12  # ... and, where it runs on into the background, this share of its box beyond it
FRAME_EDGE_SHARE = 0.75  # a component covering this share of one edge is a band or surround
FRAME_SECOND_EDGE_SHARE = 0.4  # ... or this share of two edges
FRAME_DEPTH = 0.15  # ... and lies mostly (FRAME_NEAR_SHARE) within this share of the film of its edges
FRAME_NEAR_SHARE = 0.6
RING_HOLE_SHARE = 0.1  # a bright component whose holes are this share of its filled area is a ring
BAND_MAX_DEPTH = 0.15  # ... at most this share of the film deep
BAND_FILL = 0.8  # an edge row or column this full of foreground is a band along the film's edge
# Along the arm, the box keeps at most this multiple of the hand's width beyond the fingertips:
# the forearm that runs on to the film's edge carries no age signal past the distal radius.
MAX_LENGTH_TO_WIDTH = 2.3
FINGER_RUNS = 2.5  # the fingers' end of a hand: at least this many runs per cross-section on average
ARM_RUNS = 1.5  # ... and the wrist's end at most this many
EDGE_TOUCH_MIN = 0.08
ARM_MAX_EDGE_SHARE = 0.7  # a forearm covers less of its edge than this  # share of a border's length the forearm must cover to count as leaving there


@dataclass(frozen=True)
class HandLocation:
    found: bool
    box: tuple[int, int, int, int] | None  # (left, top, right, bottom) in input pixels, right/bottom exclusive
    margin: int  # pixels to add on every side when cropping (crop_box applies it)
    rotation_degrees: int | None  # 0, 90, 180, 270 counter-clockwise to make fingers point up; None: unknown
    reason: str | None  # why no hand was found (None when found)
    area_share: float = 0.0  # the hand's share of the film's pixels
    image_size: tuple[int, int] = (0, 0)  # (width, height) of the input

    @property
    def crop_box(self) -> tuple[int, int, int, int] | None:
        """The box with its margin, clipped to the image."""
        if self.box is None:
            return None
        left, top, right, bottom = self.box
        width, height = self.image_size
        m = self.margin
        return max(0, left - m), max(0, top - m), min(width, right + m), min(height, bottom + m)


def not_found(reason: str, shape: tuple[int, ...]) -> HandLocation:
    return HandLocation(False, None, 0, None, reason, 0.0, (int(shape[1]), int(shape[0])))


def locate_hand(gray: np.ndarray) -> HandLocation:
    """gray: a 2-D float image in [0, 1], bone bright (core.imageio.decode_image)."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or min(gray.shape) < 8:
        return not_found("the image is not a 2-D picture of usable size", gray.shape)
    height, width = gray.shape
    small, scale = _reduce(gray)
    lo, hi = np.percentile(small, (1, 99))
    if hi - lo < MIN_CONTRAST:
        return not_found("the image is nearly uniform: there is no hand to find", gray.shape)
    small = ndimage.gaussian_filter(np.clip((small - lo) / (hi - lo), 0, 1), 1.0)

    mask, reason = _hand_mask(small)
    if mask is None:
        return not_found(reason, gray.shape)
    rotation = _orientation(mask)
    box_small = _box(mask, rotation)
    left, top, right, bottom = box_small
    box = (int(np.floor(left * scale)), int(np.floor(top * scale)),
           min(width, int(np.ceil(right * scale))), min(height, int(np.ceil(bottom * scale))))
    margin = int(round(MARGIN_FRACTION * max(box[2] - box[0], box[3] - box[1])))
    return HandLocation(True, box, margin, rotation, None, float(mask.mean()), (width, height))


def _reduce(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """The film at most WORK_SIDE a side, and the factor back to input pixels."""
    height, width = gray.shape
    scale = max(height, width) / WORK_SIDE
    if scale <= 1:
        return gray, 1.0
    size = (max(1, round(width / scale)), max(1, round(height / scale)))
    image = Image.fromarray(gray, mode="F").resize(size, Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32), width / size[0]


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that maximises the between-class variance of `values`."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(hist)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(hist * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(centres[int(np.argmax(between))])


def _hand_mask(image: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The hand's mask on the reduced film, or None and why not."""
    structure = _disk(max(1, round(min(image.shape) / 256)))
    hand = _search(image, np.ones(image.shape, dtype=bool), structure, 0)
    if hand is None:
        return None, "no hand found: no bright, hand-shaped region apart from the film's background, plate and edges"
    return hand, ""


def _search(image: np.ndarray, region: np.ndarray, structure: np.ndarray, depth: int) -> np.ndarray | None:
    """The hand among the pixels of `region`: Otsu splits them, and the largest bright part is
    the hand unless it is a plate (look inside it), a surround or band along the edges, or
    specks (look elsewhere)."""
    area = image.size
    if depth > MAX_RETHRESHOLD or region.sum() < MIN_AREA_SHARE * area:
        return None
    threshold = otsu_threshold(image[region])
    bright = morphology.binary_opening((image > threshold) & region, structure)
    whole = _largest_component(bright)
    if whole is not None and _is_plate(whole):
        # a lighter plate or collimated field (convex: a possibly tilted rectangle): the hand is inside it
        return _search_plate(image, whole, structure, depth)
    component = _largest_component(_peel_border_bands(bright))
    if component is not None and _is_frame(component):
        # a bright surround along the film's edges: the hand is elsewhere
        return _search(image, region & ~morphology.binary_dilation(component, structure, iterations=2),
                       structure, depth + 1)
    if component is None or component.sum() < MIN_SEED_SHARE * area:
        # only bright bands along the edges, or specks: look among the darker pixels
        return _search(image, region & ~morphology.binary_dilation(bright, structure, iterations=2),
                       structure, depth + 1)
    if _is_plate(component):
        return _search_plate(image, component, structure, depth)
    hand = morphology.binary_fill_holes(_with_soft_tissue(image, component, region, structure))
    return hand if hand.sum() >= MIN_AREA_SHARE * area else None


def _search_plate(image: np.ndarray, plate: np.ndarray, structure: np.ndarray, depth: int) -> np.ndarray | None:
    """The hand on a plate: in the hole of a ring (a bright surround around the film, a plate's
    bright edge around a darker field), else among the plate's own pixels, brighter than it."""
    filled = morphology.binary_fill_holes(plate)
    holes = filled & ~plate
    if holes.sum() > RING_HOLE_SHARE * filled.sum():
        hand = _search(image, morphology.binary_erosion(holes, structure), structure, depth + 1)
        if hand is not None:
            return hand
    return _search(image, morphology.binary_erosion(plate, structure, iterations=2), structure, depth + 1)


def _with_soft_tissue(image: np.ndarray, hand: np.ndarray, region: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """The threshold may have split bone from soft tissue: a second Otsu below it takes in the
    fingertips and the wrist's soft tissue when that grows the hand moderately (and not into
    the background)."""
    darker = region & (image <= image[hand].min())
    if darker.sum() < 16:
        return hand
    threshold = otsu_threshold(image[darker])
    wider = _peel_border_bands(morphology.binary_opening((image > threshold) & region, structure))
    labels, _ = ndimage.label(wider)
    touching = np.unique(labels[hand & wider])
    touching = touching[touching > 0]
    if len(touching) == 0:
        return hand
    grown = np.isin(labels, touching)
    if not (grown.sum() > SOFT_TISSUE_GROWTH * hand.sum() or _is_frame(grown, hugging=False) or _is_plate(grown)):
        return grown | hand
    # it ran on into the background or a plate's edge: keep only what lies near the bony hand
    # (the fingertips' and the thumb's soft tissue)
    near = np.zeros_like(hand)
    rows, cols = np.flatnonzero(hand.any(axis=1)), np.flatnonzero(hand.any(axis=0))
    reach_y = round(SOFT_TISSUE_REACH * (rows[-1] - rows[0] + 1))
    reach_x = round(SOFT_TISSUE_REACH * (cols[-1] - cols[0] + 1))
    near[max(0, rows[0] - reach_y) : rows[-1] + 1 + reach_y, max(0, cols[0] - reach_x) : cols[-1] + 1 + reach_x] = True
    nearby = _largest_component((grown & near) | hand)
    if (nearby is None or nearby.sum() > SOFT_TISSUE_GROWTH * hand.sum() or _is_plate(nearby)
            or _edges_touched(nearby) - _edges_touched(hand)):  # a glow along an edge, not soft tissue
        return hand
    return nearby | hand


def _edges_touched(mask: np.ndarray) -> set[str]:
    return {name for name, line in (("top", mask[0]), ("bottom", mask[-1]), ("left", mask[:, 0]),
                                    ("right", mask[:, -1])) if line.any()}


def _is_plate(component: np.ndarray) -> bool:
    return solidity(morphology.binary_fill_holes(component)) >= PLATE_SOLIDITY


def _is_frame(component: np.ndarray, *, hugging: bool = True) -> bool:
    """A bright surround or band: it runs along much of the film's edges (a forearm leaves by one
    edge, over a fraction of it). hugging=False: the edges alone decide (for the soft tissue
    grown around a hand, which must not reach along the edges at all)."""
    shares = [component[0].mean(), component[-1].mean(), component[:, 0].mean(), component[:, -1].mean()]
    if sorted(shares)[-2] <= FRAME_SECOND_EDGE_SHARE and max(shares) <= FRAME_EDGE_SHARE:
        return False
    if not hugging:
        return True
    # a band or surround hugs the edges; a forearm (even a wide one, or one leaving by a
    # corner) leads to a hand far from them
    height, width = component.shape
    depth = round(FRAME_DEPTH * min(height, width))
    near = component.copy()
    near[depth:-depth, depth:-depth] = False
    return near.sum() > FRAME_NEAR_SHARE * component.sum()


def _peel_border_bands(mask: np.ndarray) -> np.ndarray:
    """Remove bright bands along the film's edges (a plate's edge, an overexposed strip): the
    outermost rows or columns that are nearly all foreground. A forearm leaving the film
    covers far less of the edge, so the hand is never peeled."""
    mask = mask.copy()
    for view in (mask, mask[::-1], mask.T, mask.T[::-1]):
        depth = 0
        while depth < len(view) and view[depth].mean() >= BAND_FILL:
            depth += 1
        if depth <= BAND_MAX_DEPTH * len(view):  # deeper is a plate, not a band
            view[:depth] = False
    return mask


def solidity(component: np.ndarray) -> float:
    """The component's area over its convex hull's: ~1 for a plate, well below for a hand."""
    edge = component & ~morphology.binary_erosion(component)
    points = np.argwhere(edge).astype(np.float64)
    if len(points) < 3:
        return 1.0
    try:
        hull = ConvexHull(points)
    except QhullError:  # all on one line
        return 1.0
    return float(component.sum()) / max(float(hull.volume), 1.0)


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


# -- orientation ----------------------------------------------------------------

# the counter-clockwise rotation that brings the forearm on each border to the bottom
_ROTATION_FOR_ARM_AT = {"bottom": 0, "left": 90, "top": 180, "right": 270}


def _orientation(mask: np.ndarray) -> int | None:
    touches = {
        "bottom": mask[-1, :].mean(), "top": mask[0, :].mean(),
        "left": mask[:, 0].mean(), "right": mask[:, -1].mean(),
    }
    side, share = max(touches.items(), key=lambda item: item[1])
    from_fingers = _orientation_from_fingers(mask)
    if share < EDGE_TOUCH_MIN:
        return from_fingers
    if share > ARM_MAX_EDGE_SHARE:  # more a band along the edge than a forearm
        return None
    from_arm = _ROTATION_FOR_ARM_AT[side]
    # A wrong rotation is worse than none, and nearly all films are upright: upright needs
    # only the forearm's edge and no contradiction, a turned film both cues agreeing.
    if from_arm == 0:
        return 0 if from_fingers in (None, 0) else None
    return from_arm if from_fingers == from_arm else None


def _orientation_from_fingers(mask: np.ndarray) -> int | None:
    """A hand inside the film: its fingers are where cross-sections cut most separate runs."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    sub = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ends = {}
    for name, lines in (("top", sub), ("bottom", sub[::-1]), ("left", sub.T), ("right", sub.T[::-1])):
        quarter = lines[: max(1, len(lines) // 4)]
        ends[name] = float(np.mean([_runs(line) for line in quarter]))
    vertical = ends["top"] + ends["bottom"] >= ends["left"] + ends["right"]
    pair = ("top", "bottom") if vertical else ("left", "right")
    fingers, arm = sorted(pair, key=lambda name: -ends[name])
    if ends[fingers] < FINGER_RUNS or ends[arm] > ARM_RUNS:  # no clear fingers at one end only
        return None
    return _ROTATION_FOR_ARM_AT[arm]


def _runs(line: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(line.astype(np.int8)) == 1) + (1 if line[0] else 0))


def _box(mask: np.ndarray, rotation: int | None) -> tuple[int, int, int, int]:
    """The mask's box; along the arm, trimmed to MAX_LENGTH_TO_WIDTH x the hand's width."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    left, top, right, bottom = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
    if rotation in (0, 180):
        longest = int(round(MAX_LENGTH_TO_WIDTH * (right - left)))
        if rotation == 0:
            bottom = min(bottom, top + longest)
        else:
            top = max(top, bottom - longest)
    elif rotation in (90, 270):
        longest = int(round(MAX_LENGTH_TO_WIDTH * (bottom - top)))
        if rotation == 270:  # arm on the right
            right = min(right, left + longest)
        else:
            left = max(left, right - longest)
    return left, top, right, bottom
