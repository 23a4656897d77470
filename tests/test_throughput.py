"""The Throughput callback: which steps it times and what throughput.json holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader

from nsmae_lightning.tasks.throughput import Throughput


class TwoSampleBatches(LightningModule):
    """Fits one scalar on batches shaped like the package's (a per-sample ``meta`` list)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return (self.weight - batch["x"].mean()) ** 2

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        items = [{"x": torch.tensor(float(i)), "meta": {"sample_token": str(i)}} for i in range(12)]
        return DataLoader(items, batch_size=2, collate_fn=lambda rows: {
            "x": torch.stack([row["x"] for row in rows]), "meta": [row["meta"] for row in rows]})


def fit(tmp_path: Path, callback: Throughput, steps: int) -> Trainer:
    trainer = Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                      callbacks=[callback])
    trainer.fit(TwoSampleBatches())
    return trainer


def test_report_times_the_steps_after_the_warm_up(tmp_path: Path) -> None:
    callback = Throughput(warmup_steps=1)
    fit(tmp_path, callback, steps=5)
    report = json.loads((tmp_path / "throughput.json").read_text())
    # step ends 1..5: the clock starts at the end of step 1, steps 2-5 are timed
    assert report["steps_timed"] == 4 == len(callback.durations)
    assert report["batch_per_rank"] == 2 and report["world_size"] == 1
    assert report["samples_per_s"] == pytest.approx(2 / report["median_step_s"])
    assert report["peak_gib_per_rank"] == [None]  # no GPU: null, not NaN (valid JSON)


def test_too_short_a_run_says_so(tmp_path: Path) -> None:
    fit(tmp_path, Throughput(warmup_steps=10), steps=3)
    assert json.loads((tmp_path / "throughput.json").read_text())["error"].startswith("no step past")


def test_bad_settings_and_batches() -> None:
    with pytest.raises(ValueError, match="warmup_steps"):
        Throughput(warmup_steps=-1)
    callback = Throughput(warmup_steps=0)
    callback._last_end, callback._steps_seen = 0.0, 1
    module = TwoSampleBatches()
    with pytest.raises(ValueError, match="meta"):
        callback.on_train_batch_end(None, module, None, {"x": torch.zeros(2)}, 0)  # type: ignore[arg-type]


def test_report_is_written_before_the_trainer_tears_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lightning's teardown moves the module to the CPU before on_fit_end: a report written then would read
    # the peak memory of the wrong device (none) and, under NCCL, fail to gather a CPU tensor.
    written_at_teardown: list[bool] = []
    teardown = Trainer._teardown

    def recording_teardown(self: Trainer) -> None:
        written_at_teardown.append((tmp_path / "throughput.json").exists())
        teardown(self)

    monkeypatch.setattr(Trainer, "_teardown", recording_teardown)
    fit(tmp_path, Throughput(warmup_steps=1), steps=3)
    assert written_at_teardown == [True]
