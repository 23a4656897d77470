"""Shim: let spconv train on CPU-only torch.

spconv 2.3's autograd functions ask ``torch.cuda.current_stream()`` for a stream
handle even when every tensor lives on the CPU, which raises on CPU-only torch
builds. Its CPU kernels ignore the stream, so handing them 0 is exact. Applied
only when CUDA is absent; on GPU machines spconv is untouched.
"""

import torch

if not torch.cuda.is_available():
    try:
        import spconv.pytorch.cppcore as _cppcore
        import spconv.pytorch.ops as _ops
    except ImportError:  # spconv is optional for code paths that never voxelize
        pass
    else:
        _cppcore.get_current_stream = lambda: 0
        _ops.get_current_stream = lambda: 0
