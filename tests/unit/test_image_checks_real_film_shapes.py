"""Real films the rules used to refuse (core/image_checks.py), reproduced with synthetic images:
a tightly collimated film whose plate the hand locator takes for the hand (its box on three or
four edges, like a crop, but a plain plate along the edges), and a film with a white band along
its edges (a bright frame around a dark film). Torch-free. The real films themselves are checked
when the RSNA sample is present (../shared/data/rsna-sample), skipped otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.hand import HandLocation
from core.image_checks import check_pixels, looks_cropped, reduce, structured_edges


def synthetic_hand(size: int = 256, seed: int = 0) -> np.ndarray:
    from training.synth import render_hand

    return render_hand(120, True, np.random.default_rng(seed), size=size)[0].astype(np.float32) / 255


def collimated_film(seed: int = 0) -> np.ndarray:
    """A grey plate filling the film (a gentle gradient across it), the whole hand inside it and
    the forearm leaving at the bottom edge: the shape of RSNA 9028, 9542, 13652."""
    hand = synthetic_hand(seed=seed)
    height, width = hand.shape
    plate = 0.16 + 0.06 * np.linspace(0, 1, width)[None, :] + np.zeros((height, 1))
    return np.maximum(plate, hand).astype(np.float32)


def central_quarter(image: np.ndarray) -> np.ndarray:
    h, w = image.shape
    return np.ascontiguousarray(image[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4])


def hand_crop(image: np.ndarray) -> np.ndarray:
    """The middle of the hand itself (half its height, 60% of its width): a crop of a film."""
    ys, xs = np.nonzero(image > 0.2)
    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    return np.ascontiguousarray(image[int(top + 0.25 * (bottom - top)) : int(top + 0.75 * (bottom - top)),
                                      int(left + 0.2 * (right - left)) : int(left + 0.8 * (right - left))])


def plate_box(image: np.ndarray) -> HandLocation:
    """What the locator answers on such a film: the plate, the whole image, as the hand."""
    h, w = image.shape
    return HandLocation(True, (0, 0, w, h), 10, None, None, 0.6, (w, h))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_plate_box_on_a_collimated_film_is_not_a_crop_but_on_a_crop_it_is(seed):
    film = collimated_film(seed)
    assert looks_cropped(plate_box(film)), "the box alone looks like a crop: the false positive's shape"
    assert structured_edges(reduce(film)) < 3  # a plain plate along the top and the sides
    assert not looks_cropped(plate_box(film), reduce(film))
    assert check_pixels(film) is None
    crop = hand_crop(synthetic_hand(seed=seed))  # fingers, palm and thumb cut at the edges
    assert structured_edges(reduce(crop)) >= 3
    assert looks_cropped(plate_box(crop), reduce(crop))


def test_a_white_band_along_the_edges_of_a_dark_film_is_not_a_bright_background():
    film = np.maximum(synthetic_hand(seed=3), 0.03)
    h, w = film.shape
    band = max(2, int(0.07 * min(h, w)))  # collimator edges, wider than the 5% frame the rule reads
    film[:, :band] = film[:, -band:] = film[-band:] = 0.94  # under the saturation level
    assert check_pixels(film) is None
    inverted = 1.0 - np.maximum(synthetic_hand(seed=3), 0.03)  # bright all over: still refused
    rejection = check_pixels(inverted)
    assert rejection is not None and rejection.code == "not_radiograph" and "bright background" in rejection.reason


def _real_film(name: str) -> np.ndarray:
    from helpers import RSNA_SAMPLE

    path = RSNA_SAMPLE / "boneage-training-dataset" / name
    if not path.is_file():
        pytest.skip(f"the real RSNA sample is not at {RSNA_SAMPLE}; this check needs one of its films")
    return np.asarray(Image.open(path).convert("L")).astype(np.float32) / 255


@pytest.mark.parametrize("name", ["9028.png", "9542.png", "13652.png", "4253.png", "8165.png", "9862.png"])
def test_real_collimated_films_pass_and_their_crops_are_still_cut_off(name):
    film = _real_film(name)
    assert check_pixels(film) is None
    rejection = check_pixels(central_quarter(film))
    assert rejection is not None and rejection.code == "cut_off"


def test_the_real_film_with_a_white_frame_passes():
    assert check_pixels(_real_film("14430.png")) is None
