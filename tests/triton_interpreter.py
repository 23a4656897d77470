"""Run a check script under Triton's CPU interpreter, in a subprocess.

``TRITON_INTERPRET`` is read when triton is imported, so the kernels' checks run in a fresh
interpreter with it set; the package and this folder are on its path (the scripts import
their test module's helpers). triton ships with CUDA builds of PyTorch, not with the CPU
wheel: machines without it (CI) skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import nsmae_lightning


def run_interpreted(script: str, marker: str) -> None:
    """Run ``script`` with TRITON_INTERPRET=1; it must exit 0 and print ``marker``."""
    pytest.importorskip("triton")
    paths = [str(Path(nsmae_lightning.__file__).parents[1]), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    environment = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker in result.stdout
