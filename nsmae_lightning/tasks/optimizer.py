"""The AdamW every task trains with (paper Sec. IV-A), and the choice of its implementation.

PyTorch's AdamW has three implementations of one update: a loop over parameters ("for-loop", CPU's
default), multi-tensor kernels ("foreach", CUDA's default) and one fused kernel per device and dtype
("fused"). The tasks keep PyTorch's default ("default"): on the H200 the fused one saved 19 of 2,570
launches and 0.35 of 45.6 GPU ms per pretraining step, less than the host noise between runs, whose
walls came out slower with it (benchmarks/RESULTS.md, eleventh session, call 3). The benchmarks take
the others (``--adamw``) to measure them again.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

ADAMW_IMPLEMENTATIONS: tuple[str, ...] = ("default", "fused", "foreach", "for-loop")


def adamw_options(implementation: str = "default") -> dict[str, bool]:
    """The ``fused`` / ``foreach`` keyword arguments of ``torch.optim.AdamW`` for ``implementation``."""
    if implementation not in ADAMW_IMPLEMENTATIONS:
        raise ValueError(f"AdamW implementation {implementation!r}: expected one of {', '.join(ADAMW_IMPLEMENTATIONS)}")
    if implementation == "default":
        return {}
    if implementation == "fused":
        return {"fused": True}
    return {"foreach": implementation == "foreach"}


def adamw(parameters: Iterable[torch.Tensor], lr: float, weight_decay: float,
          implementation: str = "default") -> torch.optim.AdamW:
    """AdamW over the trainable ``parameters``."""
    trainable = [p for p in parameters if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay, **adamw_options(implementation))
