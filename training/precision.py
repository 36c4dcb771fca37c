"""Numeric precision and memory layout of the model's forward passes.

Autocast (bfloat16 or float16) and channels-last are chosen by settings
(BONEAGE_PRECISION, BONEAGE_CHANNELS_LAST; docs/benchmarks.md has the measurements
behind the defaults): "auto" means channels-last everywhere (faster on this project's
AVX2 CPU, and the layout tensor cores want), float32 on a CPU (no bfloat16 units here: the
emulated bfloat16 kept the held-out MAE but its speed-up was within the noise of a shared
machine, and float16 on the CPU was much slower) and float16 autocast on CUDA (unmeasured
until the GPU check runs: benchmarks/gpu_check.py prints the MAE of each choice).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CHOICES = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    dtype: str = "fp32"  # "fp32" | "bf16" | "fp16"
    channels_last: bool = False

    @classmethod
    def resolve(cls, device: torch.device, dtype: str = "auto", channels_last: str | bool = "auto") -> "Precision":
        """The concrete choice for a device; "auto" as the module docstring says."""
        if dtype not in CHOICES:
            raise ValueError(f"precision must be one of {', '.join(CHOICES)}, got {dtype!r}")
        if dtype == "auto":
            dtype = "fp16" if device.type == "cuda" else "fp32"
        if dtype == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            dtype = "fp16"
        if channels_last == "auto":
            channels_last = True
        elif isinstance(channels_last, str):
            channels_last = channels_last.strip().lower() in ("1", "true", "yes")
        return cls(dtype, bool(channels_last))

    def autocast(self, device: torch.device):
        """A context for the forward pass: autocast to the chosen dtype, or nothing."""
        if self.dtype == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=DTYPES[self.dtype])

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model in the chosen memory layout (in place)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def layout(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
