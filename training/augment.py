"""Batch augmentation on uint8 image squares, vectorised with affine_grid/grid_sample."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_float(batch_uint8: torch.Tensor) -> torch.Tensor:
    """(B, H, W) uint8 → (B, 1, H, W) float in [0, 1]."""
    return batch_uint8.unsqueeze(1).float().div_(255.0)


def augment(images: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """images: (B, 1, H, W) in [0, 1]."""
    if mode == "none":
        return images
    if mode == "rotate10":  # the seed's RandomRotation(10), black fill
        return _affine(images, _uniform(images, generator, -10, 10), None, None, None)
    if mode == "strong":  # Deeplasia-style affine + contrast
        size = images.shape[0]
        angles = _uniform(images, generator, -20, 20)
        scales = _uniform(images, generator, 0.85, 1.15)
        shifts = _uniform(images, generator, -0.08, 0.08, (size, 2))
        flips = torch.rand(size, generator=generator) < 0.5
        out = _affine(images, angles, scales, shifts, flips)
        return _photometric(out, generator)
    raise ValueError(f"unknown augmentation {mode!r}")


def _uniform(images, generator, low, high, shape=None) -> torch.Tensor:
    shape = shape or (images.shape[0],)
    return torch.rand(shape, generator=generator) * (high - low) + low


def _affine(images, angles_deg, scales, shifts, flips) -> torch.Tensor:
    size = images.shape[0]
    radians = angles_deg * math.pi / 180
    cos, sin = torch.cos(radians), torch.sin(radians)
    inv_scale = 1.0 / scales if scales is not None else torch.ones(size)
    x_sign = torch.where(flips, -1.0, 1.0) if flips is not None else torch.ones(size)
    theta = torch.zeros(size, 2, 3)
    theta[:, 0, 0] = cos * inv_scale * x_sign
    theta[:, 0, 1] = -sin * inv_scale
    theta[:, 1, 0] = sin * inv_scale * x_sign
    theta[:, 1, 1] = cos * inv_scale
    if shifts is not None:
        theta[:, :, 2] = shifts
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _photometric(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    size = images.shape[0]
    shape = (size, 1, 1, 1)
    gamma = torch.exp(torch.randn(shape, generator=generator) * 0.25)
    contrast = torch.rand(shape, generator=generator) * 0.5 + 0.75
    brightness = (torch.rand(shape, generator=generator) - 0.5) * 0.2
    out = images.clamp(1e-4, 1.0).pow(gamma)
    out = (out - 0.5) * contrast + 0.5 + brightness
    noise = torch.randn(images.shape, generator=generator) * (torch.rand(shape, generator=generator) * 0.03)
    return (out + noise).clamp_(0.0, 1.0)


def hflip(images: torch.Tensor) -> torch.Tensor:
    return torch.flip(images, dims=[-1])
