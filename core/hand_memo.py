"""The hand's location of one decoded film, found once (core.hand.locate_hand).

The worker's image checks (core.image_checks: is it a crop?) and the orientation
(training.orientation: is it upside down?) both need where the hand is on the same decoded
film; locating it costs 25-45 ms of CPU a film. hand_location() answers the second caller
with the first one's result.

Remembered per array object, held weakly: an entry goes when its image does, so nothing
grows. The image must not be changed in place between the calls (nothing in the pipeline
does); a new array, even with the same pixels, is located again.
"""

from __future__ import annotations

import weakref

import numpy as np

from core.hand import HandLocation, locate_hand

_located: dict[int, tuple[weakref.ref, HandLocation]] = {}


def hand_location(image: np.ndarray) -> HandLocation:
    """locate_hand(image), computed once per image object."""
    key = id(image)
    entry = _located.get(key)
    if entry is not None and entry[0]() is image:
        return entry[1]
    location = locate_hand(image)
    try:
        ref = weakref.ref(image, lambda dead, key=key: _forget(key, dead))
    except TypeError:  # not weakly referenceable (a list, say): not remembered
        return location
    _located[key] = (ref, location)
    return location


def _forget(key: int, dead: weakref.ref) -> None:
    entry = _located.get(key)
    if entry is not None and entry[0] is dead:
        del _located[key]
