"""The benchmark's "optimize vs the best path" verdict is paired round by round.

The timer is replaced by scripted samples (a timed unit test would measure the CI machine's
noise): a load that rises between the two timings of one round spoils that round's ratio only,
and the verdict, the median of the per-round ratios, stays at the true ratio where the ratio of
the two medians doubles. Rounds go on past the first eleven only while the median's 95%
interval still holds the threshold, and stop at a cap.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import pytest

from benchmarks import targets, worker

MODEL, BATCH = "mlp_small", 16


def _measure(monkeypatch: pytest.MonkeyPatch, load: Iterable[float], ratio: float,
             load_best: Iterable[float] | None = None) -> dict[str, Any]:
    """One optimize measurement: optimize takes `ratio` x the best path's time, each times its
    load in that round (`load`, and `load_best` for the best path: `load` if not given)."""
    def fast() -> None:
        return None

    def best_path() -> None:
        return None

    fast.info = {"chose": "eager", "tuning_s": 1.0, "tuned": []}  # type: ignore[attr-defined]
    rounds = {fast: iter(load), best_path: iter(load_best or itertools.repeat(1.0))}
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
    assert "paired 1.02-2.04x over 11 rounds, median's 95% 1.02-1.02x" in verdict.note


def _verdict(row: dict[str, Any]) -> targets.Verdict:
    rs = targets.rows({"subjects": [{"model": MODEL, "impl": "nnzoo", "backend": "torch",
                                     "rows": [row, {**row, "path": "inference_mode",
                                                    "median_s": 1e-3, "versus": None}]}]})
    [verdict] = targets.optimize_verdicts(MODEL, rs, [BATCH])
    return verdict


def test_rounds_go_on_while_the_noise_leaves_the_verdict_open(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # equal paths under a load that swings +-20% for eleven rounds: the median's interval holds
    # 1.05, so the rounds go on; once the load settles the interval narrows below 1.05 and stop
    load = itertools.chain([0.8, 1.2] * 5 + [1.2], itertools.repeat(1.0))
    row = _measure(monkeypatch, load, ratio=1.0)
    rounds = row["versus"]["rounds"]
    assert worker.PAIRED_REPEATS < rounds < worker.PAIRED_MAX
    low, high = row["versus"]["paired_ci"]
    assert high < targets.THRESHOLDS[targets.T_OPTIMIZE] and low <= 1.0
    verdict = _verdict(row)
    assert verdict.ok and verdict.value == pytest.approx(1.0)
    assert f"over {rounds} rounds" in verdict.note


def test_rounds_stop_at_the_cap_and_at_the_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    swinging = [0.8, 1.3]  # never decided: the interval always holds 1.05
    row = _measure(monkeypatch, itertools.cycle(swinging), ratio=1.0)
    assert row["versus"]["rounds"] == worker.PAIRED_MAX
    monkeypatch.setattr(worker, "PAIRED_BUDGET_S", 0.0)
    row = _measure(monkeypatch, itertools.cycle(swinging), ratio=1.0)
    assert row["versus"]["rounds"] == worker.PAIRED_REPEATS


def test_a_clear_verdict_takes_the_first_rounds_only(monkeypatch: pytest.MonkeyPatch) -> None:
    row = _measure(monkeypatch, itertools.cycle([0.97, 1.03]), ratio=1.3)
    assert row["versus"]["rounds"] == worker.PAIRED_REPEATS
    assert not _verdict(row).ok


def test_a_slower_choice_is_still_a_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    row = _measure(monkeypatch, [1.0] * worker.PAIRED_REPEATS, ratio=1.2)
    verdict = _verdict(row)
    assert not verdict.ok and verdict.value == pytest.approx(1.2)
