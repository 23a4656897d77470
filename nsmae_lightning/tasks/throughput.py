"""Training throughput and peak memory of a run, written next to its checkpoints.

``--trainer.callbacks+=nsmae_lightning.tasks.throughput.Throughput`` times the training
steps after ``warmup_steps`` (wall time from one step's end to the next, so data
loading and DDP communication count), and at the end of training rank 0 writes
``throughput.json`` into the run folder: median step time, samples per second over all
ranks (``world_size x batch per rank / median step``) and every rank's peak GPU memory.
The DDP scaling experiment (experiments/ddp/) compares these files across device counts.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.tasks.base import batch_size_of


class Throughput(Callback):
    """Time the training steps of a run.

    Args:
        warmup_steps: steps left out of the timing (compilation, allocator, cudnn autotuning).
        filename: the report's name in the run folder.
    """

    def __init__(self, warmup_steps: int = 5, filename: str = "throughput.json") -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self.filename = filename
        self.durations: list[float] = []
        self.batch_sizes: list[int] = []
        self._last_end: float | None = None
        self._steps_seen = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Reset the counters and the GPU memory peak."""
        self.durations, self.batch_sizes, self._last_end, self._steps_seen = [], [], None, 0
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """One more step: time it once past the warm-up."""
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # a step has ended when its kernels have
        now = time.perf_counter()
        self._steps_seen += 1
        if self._last_end is not None and self._steps_seen > self.warmup_steps:
            self.durations.append(now - self._last_end)
            self.batch_sizes.append(_batch_size(batch))
        self._last_end = now

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Validation is not a training step: the next step's clock starts after it."""
        self._last_end = None

    def report(self, trainer: Trainer, peak_gib: list[float | None]) -> dict[str, Any]:
        """The numbers ``throughput.json`` holds."""
        if not self.durations:
            return {"steps_timed": 0, "error": f"no step past the {self.warmup_steps} warm-up steps"}
        median = statistics.median(self.durations)
        batch = statistics.median(self.batch_sizes)
        return {
            "world_size": trainer.world_size,
            "batch_per_rank": batch,
            "steps_timed": len(self.durations),
            "median_step_s": median,
            "mean_step_s": statistics.fmean(self.durations),
            "samples_per_s": trainer.world_size * batch / median,
            "peak_gib_per_rank": peak_gib,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        }

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Gather every rank's peak memory; rank 0 writes the report.

        At the end of training, not of ``fit``: Lightning's teardown, which runs before ``on_fit_end``,
        moves the module to the CPU (its device no longer says which GPU's peak to read, and NCCL
        cannot gather a CPU tensor).
        """
        device = pl_module.device
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        gathered = trainer.strategy.all_gather(torch.tensor([peak], device=device, dtype=torch.float64))
        # JSON has no NaN: a rank without a GPU reports null
        peaks = [None if value != value else float(value) for value in gathered.reshape(-1).tolist()]
        folder = Path(trainer.log_dir or trainer.default_root_dir)  # a broadcast under DDP: every rank asks
        if trainer.is_global_zero:
            atomic_write_text(folder / self.filename, json.dumps(self.report(trainer, peaks), indent=2) + "\n")


def _batch_size(batch: Any) -> int:
    """Samples in a collated batch (its per-sample ``meta`` list)."""
    if isinstance(batch, dict) and isinstance(batch.get("meta"), list):
        return batch_size_of(batch)
    raise ValueError("Throughput needs batches with a per-sample 'meta' list (the package's collate)")
