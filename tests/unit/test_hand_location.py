"""Hand localisation (core/hand.py): found where a hand is, nothing on a blank film, the
orientation of turned films, and the hand-checked boxes of real RSNA radiographs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.hand import HandLocation, locate_hand
from core.imageio import decode_image
from helpers import REPO_ROOT, RSNA_SAMPLE

SAMPLE = RSNA_SAMPLE / "boneage-training-dataset"
CHECKED = REPO_ROOT / "tests" / "data" / "hand_boxes.json"
# A checked box may stick out of the crop by this share of the film's longer side (the
# checked boxes were read off thumbnails by eye)
TOLERANCE = 0.03
UPRIGHT_FILM = "1377"  # a typical film: a left hand, fingers up, forearm leaving at the bottom


def _sample_film(image_id: str) -> np.ndarray:
    path = SAMPLE / f"{image_id}.png"
    if not path.is_file():
        pytest.skip(f"the real RSNA sample is not at {SAMPLE} (it is never copied into the repository)")
    return decode_image(path)


def _contains(crop, box, film_shape, tolerance=TOLERANCE) -> bool:
    slack = tolerance * max(film_shape)
    return (crop[0] <= box[0] + slack and crop[1] <= box[1] + slack
            and crop[2] >= box[2] - slack and crop[3] >= box[3] - slack)


def _area(box) -> float:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


@pytest.mark.parametrize("blank", [np.zeros((300, 240)), np.full((300, 240), 0.7),
                                   np.random.default_rng(0).normal(0.4, 0.005, (300, 240)).clip(0, 1)])
def test_a_blank_film_has_no_hand(blank):
    location = locate_hand(blank.astype(np.float32))
    assert not location.found and location.box is None and location.crop_box is None
    assert "no hand" in location.reason


def test_a_bright_rectangle_alone_is_not_a_hand():
    """A plate or an overexposed field with nothing on it."""
    film = np.full((300, 240), 0.05, dtype=np.float32)
    film[40:260, 30:210] = 0.6
    location = locate_hand(film)
    assert not location.found and "no hand" in location.reason


def test_the_hand_of_a_real_film_is_found_upright():
    film = _sample_film(UPRIGHT_FILM)
    location = locate_hand(film)
    assert isinstance(location, HandLocation) and location.found and location.reason is None
    assert location.rotation_degrees == 0
    assert location.image_size == (film.shape[1], film.shape[0])
    left, top, right, bottom = location.crop_box
    assert 0 <= left < right <= film.shape[1] and 0 <= top < bottom <= film.shape[0]
    assert 0.1 < location.area_share < 0.9


@pytest.mark.parametrize("turn, expected", [
    (lambda a: a[:, ::-1], 0),  # a mirrored (right) hand is still upright
    (lambda a: a[::-1, :], 180),  # flipped top to bottom: fingers down
    (lambda a: np.rot90(a, 2), 180),  # turned upside down
    (lambda a: np.rot90(a, 1), 270),  # turned a quarter counter-clockwise: fingers to the left
    (lambda a: np.rot90(a, 3), 90),  # a quarter clockwise: fingers to the right
])
def test_turned_films_are_found_and_their_rotation_detected(turn, expected):
    film = np.ascontiguousarray(turn(_sample_film(UPRIGHT_FILM)))
    location = locate_hand(film)
    assert location.found and location.rotation_degrees == expected
    upright = np.rot90(film, location.rotation_degrees // 90)
    assert locate_hand(np.ascontiguousarray(upright)).rotation_degrees == 0


def test_the_box_is_in_input_pixels_at_any_scale():
    """The film is reduced before the rules: the box must come back in the input's pixels."""
    film = _sample_film(UPRIGHT_FILM)
    small = locate_hand(film)
    large = locate_hand(np.kron(film, np.ones((3, 3), dtype=np.float32)))
    assert large.found and large.image_size == (3 * small.image_size[0], 3 * small.image_size[1])
    for a, b in zip(small.box, large.box):
        assert abs(3 * a - b) <= 0.02 * 3 * max(film.shape)


def test_hand_checked_boxes_of_real_films():
    """Boxes of ~40 real films checked by eye (tests/data/hand_boxes.json), hard ones included:
    plates, bright edges and surrounds, markers, small and tilted hands. The crop must contain
    each checked hand, and not be far larger than it."""
    checked = json.loads(CHECKED.read_text())["boxes"]
    _sample_film(next(iter(checked)))  # skips when the sample is absent
    wrong = []
    for image_id, box in checked.items():
        film = decode_image(SAMPLE / f"{image_id}.png")
        location = locate_hand(film)
        if not location.found:
            wrong.append(f"{image_id}: {location.reason}")
        elif not _contains(location.crop_box, box, film.shape):
            wrong.append(f"{image_id}: crop {location.crop_box} cuts the checked hand {box}")
        elif _area(location.crop_box) > 3.0 * _area(box):
            wrong.append(f"{image_id}: crop {location.crop_box} is far larger than the checked hand {box}")
    assert len(wrong) <= 0.02 * len(checked), "\n".join(wrong)
