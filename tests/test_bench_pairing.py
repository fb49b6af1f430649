"""The benchmark's "optimize vs the best path" verdict is paired round by round.

The timer is replaced by scripted samples (a timed unit test would measure the CI machine's
noise): a load that rises between the two timings of one round spoils that round's ratio only,
and the verdict, the median of the per-round ratios, stays at the true ratio where the ratio of
the two medians doubles.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import targets, worker

MODEL, BATCH = "mlp_small", 16


def _measure(monkeypatch: pytest.MonkeyPatch, load: list[float], ratio: float,
             load_best: list[float] | None = None) -> dict[str, Any]:
    """One optimize measurement: optimize takes `ratio` x the best path's time, each times its
    load in that round (`load`, and `load_best` for the best path: `load` if not given)."""
    def fast() -> None:
        return None

    def best_path() -> None:
        return None

    fast.info = {"chose": "eager", "tuning_s": 1.0, "tuned": []}  # type: ignore[attr-defined]
    rounds = {fast: iter(load), best_path: iter(load_best or load)}
    base = {fast: ratio * 1e-3, best_path: 1e-3}
    monkeypatch.setattr(worker, "prepare", lambda model, job, item, x: fast)
    monkeypatch.setattr(worker, "timed", lambda fn, calls, sync: base[fn] * next(rounds[fn]))
    job = {"model": MODEL, "backend": "torch", "warmup": 1, "repeats": 3, "min_repeat_s": 0.0}
    item = {"kind": "infer", "path": "optimize", "batch": BATCH}
    best = {("nnzoo", BATCH): ("inference_mode", best_path, 1e-3)}
    return worker.measure({"nnzoo": object()}, job, item, best)["nnzoo"]


def test_optimize_is_paired_with_the_best_path_over_more_rounds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the load doubles in round 6, between its two timings: optimize's median carries the double
    # load, the best path's does not (ratio of medians 2.04); ten rounds of eleven were fair
    load = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    row = _measure(monkeypatch, load, ratio=1.02, load_best=[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    assert row["repeats"] == worker.PAIRED_REPEATS == len(load)
    versus = row["versus"]
    assert versus["path"] == "inference_mode"
    assert row["median_s"] / versus["median_s"] == pytest.approx(2.04)
    assert versus["paired"] == pytest.approx(1.02)
    assert versus["paired_min"] == pytest.approx(1.02) and versus["paired_max"] == pytest.approx(
        2.04)
    rs = targets.rows({"subjects": [{"model": MODEL, "impl": "nnzoo", "backend": "torch",
                                     "rows": [row, {**row, "path": "inference_mode",
                                                    "versus": None}]}]})
    [verdict] = targets.optimize_verdicts(MODEL, rs, [BATCH])
    assert verdict.ok and verdict.value == pytest.approx(1.02)
    assert "paired 1.02-2.04x" in verdict.note


def test_a_slower_choice_is_still_a_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    row = _measure(monkeypatch, [1.0] * worker.PAIRED_REPEATS, ratio=1.2)
    rs = targets.rows({"subjects": [{"model": MODEL, "impl": "nnzoo", "backend": "torch",
                                     "rows": [row, {**row, "path": "inference_mode",
                                                    "median_s": 1e-3, "versus": None}]}]})
    [verdict] = targets.optimize_verdicts(MODEL, rs, [BATCH])
    assert not verdict.ok and verdict.value == pytest.approx(1.2)
