"""`nsmae curves`: series read from CSVLogger files, one run or several overlaid."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from nsmae_lightning.evaluation import curves


def write_metrics(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    """A CSVLogger-shaped file: step, train/loss_step, train/loss_epoch (epoch aggregates are skipped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,step,train/loss_epoch,train/loss_step,val/loss"] + [f"0,{step},,{loss},{val}" for step, loss, val in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_series_drops_blanks_epoch_columns_and_non_finite(tmp_path: Path) -> None:
    path = write_metrics(tmp_path / "metrics.csv", [(4, "2.0", ""), (9, "nan", ""), (9, "", "1.5")])
    assert curves.read_series(path, "train/loss") == {"train/loss": [(4, 2.0)]}
    assert curves.read_series(path, "val/loss") == {"val/loss": [(9, 1.5)]}


def test_several_runs_share_panels_one_line_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    random = write_metrics(tmp_path / "random" / "version_0" / "metrics.csv", [(4, "3.0", ""), (9, "2.0", "2.5")])
    nsmae = write_metrics(tmp_path / "nsmae" / "version_0" / "metrics.csv", [(4, "1.0", ""), (9, "0.5", "0.7")])
    drawn: list[list[tuple[str, list[float]]]] = []
    close = plt.close

    def record(figure: plt.Figure) -> None:  # what each panel shows, before the figure goes
        drawn.extend([[(line.get_label(), list(line.get_ydata())) for line in axis.lines] for axis in figure.axes if axis.lines])
        close(figure)

    monkeypatch.setattr(curves.plt, "close", record)
    out = tmp_path / "overlay.png"
    assert curves.main([str(tmp_path / "random"), str(nsmae), "--label", "random", "--label", "NS-MAE", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn == [[("random", [3.0, 2.0]), ("NS-MAE", [1.0, 0.5])], [("random", [2.5]), ("NS-MAE", [0.7])]]
    assert random.exists()


def test_label_count_and_missing_runs_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_metrics(tmp_path / "a" / "metrics.csv", [(1, "1.0", "")]).parent
    with pytest.raises(SystemExit):
        curves.main([str(run), str(run), "--label", "only-one"])
    assert "2 runs" in capsys.readouterr().err
    assert curves.main([str(tmp_path / "empty")]) == 2
    assert "no metrics.csv under" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no column starts with"):
        curves.plot_curves(run / "metrics.csv", tmp_path / "x.png", ("nothing/",))
