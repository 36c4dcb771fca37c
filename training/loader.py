"""The training batches on a CUDA device: made by DataLoader workers, ready before the GPU asks.

On a CPU the training loop augments each batch itself with the run's one generator (so a CPU
run is reproducible and resumable exactly as before). On CUDA the GPU must not wait for
the CPU: each batch of the epoch's order is augmented in a DataLoader worker process from
the cached uint8 squares (shared with the workers by fork, not copied), with a generator
seeded by (seed, epoch, batch) so the run stays deterministic, put in pinned memory and
copied to the device without blocking.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from training.augment import augment, to_float


class AugmentedBatches(Dataset):
    """Item b: the augmented float images (B, 1, H, W) of order[b * batch_size : (b + 1) * batch_size]."""

    def __init__(self, images: np.ndarray, order: np.ndarray, batch_size: int, mode: str, seed: int):
        self.images, self.order, self.batch_size, self.mode, self.seed = images, order, batch_size, mode, seed

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __getitem__(self, b: int) -> torch.Tensor:
        idx = self.order[b * self.batch_size : (b + 1) * self.batch_size]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + b)
        return augment(to_float(torch.from_numpy(self.images[idx])), self.mode, generator)


def loader_workers() -> int:
    """DataLoader worker processes: BONEAGE_LOADER_WORKERS, else all cores but one, at most 8."""
    configured = os.environ.get("BONEAGE_LOADER_WORKERS")
    if configured:
        return max(0, int(configured))
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def device_batches(images: np.ndarray, order: np.ndarray, batch_size: int, mode: str, *, seed: int, epoch: int,
                   device: torch.device, channels_last: bool = False) -> Iterator[torch.Tensor]:
    """The epoch's augmented batches, in order, on `device` (copied without blocking)."""
    workers = loader_workers()
    loader = DataLoader(AugmentedBatches(images, order, batch_size, mode, seed * 10_007 + epoch), batch_size=None,
                        shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
                        prefetch_factor=4 if workers else None)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for x in loader:
        yield x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
