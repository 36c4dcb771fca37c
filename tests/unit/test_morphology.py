"""core.morphology gives exactly scipy.ndimage's results (the hand locator's boxes must not move)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from core import morphology
from core.hand import _disk

STRUCTURES = [ndimage.generate_binary_structure(2, 1), ndimage.generate_binary_structure(2, 2), _disk(1), _disk(2),
              _disk(3)]


@st.composite
def masks(draw):
    """Random masks of several densities and sizes, smoothed so that they have blobs, holes and
    thin parts, touching the edges or not."""
    height = draw(st.integers(1, 48))
    width = draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.floats(0.05, 0.95))
    rng = np.random.default_rng(seed)
    noise = ndimage.uniform_filter(rng.random((height, width)), size=draw(st.integers(1, 5)))
    return noise < np.quantile(noise, density)


def repeated(operation, mask, structure, iterations):
    """scipy's `iterations=n`, as n single passes. scipy's own iterated path corrupts memory
    when the structure is larger than the mask (scipy/scipy#11400, still in scipy 1.17.1:
    "double free or corruption", or wrong pixels before the abort); one pass at a time is
    the same operation and safe."""
    for _ in range(iterations):
        mask = operation(mask, structure=structure)
    return mask


@settings(max_examples=200, deadline=None)
@given(mask=masks(), which=st.integers(0, len(STRUCTURES) - 1), iterations=st.integers(1, 3))
def test_erosion_and_dilation_equal_scipy(mask, which, iterations):
    structure = STRUCTURES[which]
    np.testing.assert_array_equal(morphology.binary_erosion(mask, structure, iterations),
                                  repeated(ndimage.binary_erosion, mask, structure, iterations))
    np.testing.assert_array_equal(morphology.binary_dilation(mask, structure, iterations),
                                  repeated(ndimage.binary_dilation, mask, structure, iterations))


def test_iterations_equal_scipys_iterated_path_where_it_is_safe():
    """The single-pass oracle above equals scipy's own `iterations` on masks larger than the
    structure, where scipy's iterated path is sound."""
    rng = np.random.default_rng(7)
    for structure in STRUCTURES:
        mask = ndimage.uniform_filter(rng.random((40, 36)), size=3) < 0.5
        for iterations in (2, 3):
            for operation in (ndimage.binary_erosion, ndimage.binary_dilation):
                np.testing.assert_array_equal(repeated(operation, mask, structure, iterations),
                                              operation(mask, structure=structure, iterations=iterations))


@settings(max_examples=200, deadline=None)
@given(mask=masks(), which=st.integers(0, len(STRUCTURES) - 1))
def test_opening_and_filling_holes_equal_scipy(mask, which):
    structure = STRUCTURES[which]
    np.testing.assert_array_equal(morphology.binary_opening(mask, structure),
                                  ndimage.binary_opening(mask, structure=structure))
    np.testing.assert_array_equal(morphology.binary_fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_default_structure_is_scipys_cross():
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True
    np.testing.assert_array_equal(morphology.binary_erosion(mask), ndimage.binary_erosion(mask))


def test_filling_a_ring_and_an_empty_or_full_mask():
    ring = np.zeros((9, 9), dtype=bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False
    assert morphology.binary_fill_holes(ring)[4, 4]
    for mask in (np.zeros((5, 6), dtype=bool), np.ones((5, 6), dtype=bool)):
        np.testing.assert_array_equal(morphology.binary_fill_holes(mask), mask)


def test_asymmetric_structures_are_refused():
    with pytest.raises(ValueError, match="symmetric"):
        morphology.binary_erosion(np.ones((5, 5), dtype=bool), np.array([[1, 1, 0]], dtype=bool))
