"""Numeric precision and memory layout of the model's forward passes.

Autocast (bfloat16 or float16) and channels-last are chosen by settings
(BONEAGE_PRECISION, BONEAGE_CHANNELS_LAST; docs/benchmarks.md has the measurements
behind the defaults): "auto" means channels-last everywhere (faster on the CPUs measured,
and the layout tensor cores want); on a CPU, bfloat16 autocast where the CPU multiplies
bfloat16 natively (AVX512-BF16 or AMX: 1.7x the forward passes of float32 on an AVX-512
EPYC, held-out MAE within 0.03 months) and float32 elsewhere (emulated bfloat16 gained
nothing measurable on an AVX2 CPU, and float16 on a CPU is much slower); float16 autocast
on CUDA (unmeasured until the GPU check runs: benchmarks/gpu_check.py prints the MAE of each
choice). This is for inference (the Predictor); training on a CPU stays in float32, where
bfloat16 was slower (no AMX).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CHOICES = ("auto", "fp32", "bf16", "fp16")


def cpu_multiplies_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX tiles), not just emulation."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


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
            if device.type == "cuda":
                dtype = "fp16"
            else:
                dtype = "bf16" if cpu_multiplies_bf16() else "fp32"
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
