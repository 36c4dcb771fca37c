"""Numeric precision and memory layout of the model's forward passes.

Autocast (bfloat16 or float16) and channels-last are chosen by settings
(BONEAGE_PRECISION, BONEAGE_CHANNELS_LAST; docs/benchmarks.md has the measurements
behind the defaults): "auto" means channels-last everywhere (faster on the CPUs measured,
and the layout tensor cores want); on a CPU, bfloat16 autocast where the CPU multiplies
bfloat16 natively (AVX512-BF16 or AMX: 1.7x the forward passes of float32 on an AVX-512
EPYC, held-out MAE within 0.03 months) and float32 elsewhere (emulated bfloat16 gained
nothing measurable on an AVX2 CPU, and float16 on a CPU is much slower); float16 autocast
on CUDA (unmeasured until the GPU check runs: benchmarks/gpu_check.py prints the MAE of each
choice). That is for inference (the Predictor). Training (`for_training`, BONEAGE_TRAIN_PRECISION)
is channels-last everywhere and mixed precision on CUDA; on a CPU it stays in float32 unless
bfloat16 is asked for, because its worth there depends on the chip, not on a flag the CPU reports:
2x the training steps of float32 on an AVX-512 EPYC (Zen 4), 0.7x on an AVX-512 Xeon without AMX,
both with avx512_bf16.
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

    @classmethod
    def for_training(cls, device: torch.device, dtype: str = "auto", channels_last: str | bool = "auto") -> "Precision":
        """Training's choice: "auto" is bfloat16 on a CUDA GPU that has it, else float16 (with loss
        scaling, in the trainer), and float32 on a CPU; "bf16" is bfloat16 on either."""
        if dtype not in ("auto", "fp32", "bf16"):
            raise ValueError(f"training precision must be auto, fp32 or bf16, got {dtype!r}")
        if dtype == "auto":
            dtype = "bf16" if device.type == "cuda" else "fp32"
        if dtype == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            dtype = "fp16"
        return cls(dtype, cls.resolve(device, "fp32", channels_last).channels_last)

    @property
    def torch_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for float32."""
        return DTYPES.get(self.dtype)

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
