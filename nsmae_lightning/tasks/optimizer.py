"""The AdamW every task trains with (paper Sec. IV-A), in its fastest implementation for the parameters.

PyTorch's AdamW has three implementations of one update: a loop over parameters ("for-loop", CPU's
default), multi-tensor kernels ("foreach", CUDA's default: ~10 kernel groups per step) and one fused
kernel per device and dtype ("fused"). On CUDA, "auto" takes the fused one: fewer launches and host
time per step, the same update up to rounding. Elsewhere it leaves PyTorch's default.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

ADAMW_IMPLEMENTATIONS: tuple[str, ...] = ("auto", "fused", "foreach", "for-loop")


def adamw_options(parameters: list[torch.Tensor], implementation: str = "auto") -> dict[str, bool]:
    """The ``fused`` / ``foreach`` keyword arguments of ``torch.optim.AdamW`` for ``implementation``."""
    if implementation not in ADAMW_IMPLEMENTATIONS:
        raise ValueError(f"AdamW implementation {implementation!r}: expected one of {', '.join(ADAMW_IMPLEMENTATIONS)}")
    if implementation == "auto":
        on_cuda = bool(parameters) and all(p.is_cuda and p.is_floating_point() for p in parameters)
        return {"fused": True} if on_cuda else {}
    if implementation == "fused":
        return {"fused": True}
    return {"foreach": implementation == "foreach"}


def adamw(parameters: Iterable[torch.Tensor], lr: float, weight_decay: float,
          implementation: str = "auto") -> torch.optim.AdamW:
    """AdamW over the trainable ``parameters``."""
    trainable = [p for p in parameters if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay, **adamw_options(trainable, implementation))
