"""Small constant tensors (ranges, voxel sizes, corner offsets, image statistics) made once per device.

`tensor.new_tensor(values)` or `torch.tensor(values, device="cuda")` copies from pageable host
memory, and PyTorch waits for the stream after that copy: every such call is a full host-device
synchronisation. The H200 profile of a pretraining step (benchmarks/RESULTS.md, 2026-12-01 second
session) counted ~640 `cudaStreamSynchronize` and ~720 `cudaMemcpyAsync` per step, most of them
these configuration constants re-made per sample and per call. Here each (values, device, dtype)
is made once per process and then reused: callers must treat the tensors as read-only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

Values = Sequence[float] | Sequence[Sequence[float]]


def _frozen(values: Values) -> tuple:
    """Nested sequences as nested tuples of Python numbers (hashable, compared by value)."""
    return tuple(_frozen(value) if isinstance(value, Sequence) else value for value in values)


@functools.lru_cache(maxsize=1024)
def _made(values: tuple, device: torch.device, dtype: torch.dtype | None) -> Tensor:
    # a normal tensor even when first asked for under inference mode (validation), so that
    # training may later save it for backward (inference tensors cannot be)
    with torch.inference_mode(False):
        return torch.tensor(values, device=device, dtype=dtype)


def device_constant(values: Values, device: torch.device | str, dtype: torch.dtype | None = None) -> Tensor:
    """``torch.tensor(values, device=device, dtype=dtype)``, made once and cached (do not write into it).

    Under ``torch.compile`` the tensor is made in the graph as usual (compiled code has no
    per-call copy to save and the cache is not traced).
    """
    if torch.compiler.is_compiling():
        return torch.tensor(values, device=device, dtype=dtype)
    return _made(_frozen(values), torch.device(device), dtype)
