"""`nnzoo report`: a markdown page and a log-scale figure of the zoo."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnzoo.cli import main
from nnzoo.report import write_report


def test_report_and_figure(tmp_path: Path) -> None:
    md, entries = write_report(tmp_path, ["mlp_small", "cnn_small", "cnn_small_gap"])
    text = md.read_text()
    assert [e.verdict for e in entries] == ["OK", "OK", "OK"]
    assert "| `cnn_small` | cnn | 3x32x32 | 621,258 | 621,258 |" in text
    assert "![parameters and FLOPs across the zoo](zoo.png)" in text
    assert "3/3 models checked OK" in text
    png = (tmp_path / "zoo.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_quick_and_size_limit(tmp_path: Path) -> None:
    _, entries = write_report(tmp_path, ["mlp_small"], quick=True)
    assert entries[0].verdict == "not checked (--quick)" and entries[0].keras is None
    _, entries = write_report(tmp_path, ["cnn_small"], max_params=1000)
    assert entries[0].verdict.startswith("not built in Keras")


def test_a_count_mismatch_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import nnzoo.parity as parity

    real = parity.count_params
    monkeypatch.setattr(parity, "count_params",
                        lambda m: parity.ParamCount(real(m).trainable + 1, real(m).non_trainable))
    _, entries = write_report(tmp_path, ["mlp_small"])
    assert entries[0].verdict.startswith("FAIL: counts differ")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "mlp_*", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "mlp_784" in out and "report: " in out and (tmp_path / "r" / "README.md").exists()
