"""Turn a rotated or upside-down film upright before predicting, and say so.

An upside-down or sideways film is not a reason to refuse it: core.hand.locate_hand finds the
hand and the rotation that makes its fingers point up (from where the forearm leaves the film,
or from the fingers). The model was trained on upright films (augmented by +-20 degrees), so a
film it finds rotated is turned before the prediction, and the result carries a note.

The locator is wrong on a few upright films (8 of the 911 RSNA films get a 90-degree answer).
Where the model has out-of-distribution statistics (training/ood.py), the turn is kept only
when the turned film is closer to the training films than the film as uploaded: an upright
film turned on its side looks less like them, a film turned upright looks more like them.

A mirrored film (a right hand) needs nothing: the model's flip test-time augmentation and the
training flips cover it. It is not noted: nothing here tells a right hand from a left one
reliably (the laterality marker is not read).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.hand_memo import hand_location

NOTES = {
    180: "the film was upside down and was turned upright before assessment",
    90: "the film was lying on its side (fingers pointing right) and was turned upright before assessment",
    270: "the film was lying on its side (fingers pointing left) and was turned upright before assessment",
}


@dataclass
class Upright:
    image: np.ndarray  # the film as the model should see it
    rotation_degrees: int  # counter-clockwise turn applied: 0, 90, 180 or 270
    note: str | None  # for the reader, when the film was turned
    no_hand_reason: str | None  # core.hand's reason when it found no hand


def rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    """Counter-clockwise by a multiple of 90 degrees."""
    return np.ascontiguousarray(np.rot90(image, (degrees // 90) % 4))


def upright(images: Sequence[np.ndarray],
            distance: Callable[[list[np.ndarray]], np.ndarray] | None = None) -> list[Upright]:
    """Each decoded film (H, W float), upright. `distance`: the OOD score of a list of films
    (lower = more like the training films); with it, a turn is kept only when it lowers the score."""
    results = []
    for image in images:
        location = hand_location(image)  # the image checks' location of this film, when they ran
        if not location.found:
            results.append(Upright(image, 0, None, location.reason))
            continue
        turn = location.rotation_degrees or 0
        results.append(Upright(rotate(image, turn), turn, NOTES.get(turn), None) if turn else
                       Upright(image, 0, None, None))
    if distance is not None:
        turned = [i for i, r in enumerate(results) if r.rotation_degrees]
        if turned:
            scores = distance([images[i] for i in turned] + [results[i].image for i in turned])
            for j, i in enumerate(turned):
                if scores[len(turned) + j] >= scores[j]:  # turning does not make it more like a hand film
                    results[i] = Upright(images[i], 0, None, None)
    return results
