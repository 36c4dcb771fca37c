"""Batch augmentation (training/augment.py): changes the image within bounds, reproducible
under a seeded generator, and "none" leaves it alone."""

from __future__ import annotations

import pytest
import torch

from training.augment import augment, hflip, to_float


def _batch(n: int = 6, size: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    squares = (torch.rand(n, size, size, generator=g) * 200 + 30).to(torch.uint8)
    return to_float(squares)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_to_float_and_hflip():
    squares = torch.tensor([[[0, 255], [51, 102]]], dtype=torch.uint8)
    x = to_float(squares)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))
    assert torch.equal(hflip(x)[0, 0], torch.tensor([[1.0, 0.0], [0.4, 0.2]]))


def test_none_leaves_the_images_and_the_generator_unchanged():
    images = _batch()
    before = images.clone()
    generator = _gen(0)
    state = generator.get_state()
    out = augment(images, "none", generator)
    assert torch.equal(out, before)
    assert torch.equal(generator.get_state(), state)  # no random numbers drawn


@pytest.mark.parametrize("mode", ["rotate10", "strong"])
def test_augment_changes_each_image_within_bounds(mode):
    images = _batch()
    before = images.clone()
    out = augment(images, mode, _gen(0))
    assert torch.equal(images, before), "the input batch was modified in place"
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    for i in range(len(images)):
        assert not torch.allclose(out[i], images[i], atol=1e-3), f"image {i} unchanged"


@pytest.mark.parametrize("mode", ["rotate10", "strong"])
def test_augment_is_reproducible_under_a_seeded_generator(mode):
    images = _batch()
    first = augment(images, mode, _gen(7))
    assert torch.equal(first, augment(images, mode, _gen(7)))
    assert not torch.equal(first, augment(images, mode, _gen(8)))
    # the generator advances: two batches in a row are augmented differently
    generator = _gen(7)
    assert not torch.equal(augment(images, mode, generator), augment(images, mode, generator))


def test_rotate10_is_a_small_rotation_with_black_fill():
    """The seed's RandomRotation(10): a centred disk stays put (rotation about the centre,
    no scale or shift), the corners may turn black, and intensities are never stretched."""
    size = 64
    white = torch.ones(8, 1, size, size)
    out = augment(white, "rotate10", _gen(1))
    y, x = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    inner = ((x - size / 2) ** 2 + (y - size / 2) ** 2) < (0.4 * size) ** 2
    assert torch.allclose(out[:, 0][:, inner], torch.ones(1), atol=1e-5)
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    # on a smooth image a rotation of at most 10 degrees changes little, a 20-degree one (or a flip) more
    ramp = ((x + 2 * y) / (3 * size)).expand(8, 1, size, size)
    rotated = augment(ramp, "rotate10", _gen(2))
    inside = inner.expand_as(ramp)
    small = (rotated - ramp).abs()[inside].mean()
    strong = (augment(ramp, "strong", _gen(2)) - ramp).abs()[inside].mean()
    assert 0 < small < 0.05 < strong, (small, strong)
