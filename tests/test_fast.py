"""`nnzoo.optimize`: every path computes what the model computes; the tuning is honest.

Correctness, the choice's bookkeeping and the cache: how fast a path is, is the benchmarks'
business (`python -m benchmarks.run`), never a unit test's, on machines as noisy as shared CI
runners. Tests marked `keras` run under each Keras backend (`KERAS_BACKEND=jax|torch|tensorflow`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnzoo
from nnzoo.errors import InputError, NotAModelError
from nnzoo.fast import OptimizeError, paths, tuning
from nnzoo.layout import to_keras
from nnzoo.runtime import to_numpy

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
#: channels-last convolutions, XLA and compiled kernels may sum in another order: float32
#: round-off, nothing more.
ATOL = 1e-5
BUDGET = 1.0  # seconds: tiny models, where a timed round takes milliseconds


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache: none reads or writes the user's ~/.cache."""
    monkeypatch.setenv("NNZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """PyTorch on one thread here: these models take microseconds per call, and on a shared
    2-core machine two OpenMP threads spinning at each barrier made a batch-2 `mlp_small` call
    take 140 ms instead (measured), which only costs test time. The choice is keyed by the
    thread count, so nothing tuned here leaks into the other setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, atol=ATOL * max(1.0, np.abs(want).max()), rtol=0)


def _torch_reference(model, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


# ---- PyTorch -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cnn_small", "mlp_small"])
def test_torch_tuned_path_matches_eval_model(name: str) -> None:
    model = nnzoo.build(name, "torch", seed=0)
    x = model.spec.example_input(3, seed=1)
    want = _torch_reference(model, x)
    model.train()  # optimize must switch to inference mode itself
    fast = nnzoo.optimize(model, x, budget=BUDGET, compile=False)
    assert not model.training and fast.model is model and fast.backend == "torch"
    _close(to_numpy(fast(torch.from_numpy(x))), want)
    report = fast.report
    assert report.source == "tuned" and report.choice in report.times_s
    expected = {"eager", "inference_mode", "compile", "compile+freezing"}
    if name == "cnn_small":
        expected |= {"channels_last", "channels_last+inference_mode"}
    assert {p["path"] for p in report.paths} == expected
    # the choice is ranked by paired ratios (its median may lie above the lowest one)
    paired = {p["path"]: p["paired"] for p in report.paths if p["paired"] is not None}
    assert paired.keys() == report.times_s.keys() and 1.0 in paired.values()  # the leader's
    assert paired[report.choice] <= (1 + tuning.TIE) * min(paired.values()) + 1e-12
    compiled = [p for p in report.paths if p["path"].startswith("compile")]
    assert all(p["status"] == "skipped" and "compile=False" in p["note"] for p in compiled)
    # every timed path was checked against the plain call, within parity's float32 bound
    assert all(p["max_diff"] <= ATOL for p in report.paths if p["status"] == "ok")


def test_torch_fixed_recipe_goes_channels_last() -> None:
    model = nnzoo.build("cnn_small", "torch", seed=0)
    fast = nnzoo.optimize(model, autotune=False)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.path == "channels_last+inference_mode" and fast.report.source == "fixed recipe"
    # the caller keeps passing ordinary NCHW tensors, of any batch size
    for batch in (1, 4):
        x = torch.from_numpy(model.spec.example_input(batch, seed=batch))
        assert tuple(fast(x).shape) == model.spec.output_shape(batch)
    assert "channels_last" not in nnzoo.optimize(nnzoo.build("mlp_small", "torch"),
                                                 autotune=False).path


def test_torch_plain_module_is_accepted() -> None:
    """Not only nnzoo builds: any module, image-ness inferred from its Conv2d layers."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    want = _torch_reference(model, x)
    fast = nnzoo.optimize(model, x, budget=BUDGET, compile=False)
    assert "channels_last" in {p["path"] for p in fast.report.paths}
    _close(to_numpy(fast(torch.from_numpy(x))), want)
    # no example and no spec: nothing to time on, so the fixed recipe, saying why
    fixed = nnzoo.optimize(model)
    assert fixed.report.source == "fixed recipe" and "example" in fixed.report.note


def _fake_paths(monkeypatch: pytest.MonkeyPatch, extra: list[paths.Path], keep: int = 2
                ) -> None:
    """The model's first `keep` real paths (the plain call first), then `extra`."""
    real = paths.paths_for
    monkeypatch.setattr("nnzoo.fast.paths_for", lambda model: real(model)[:keep] + extra)


def test_wrong_or_broken_paths_are_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """A path that is fast but wrong, or that raises, is reported and left out."""
    wrong = paths.Path("wrong", "fast and wrong", lambda m: lambda x: torch.zeros(len(x), 10))
    close = paths.Path("slightly-off", "off by 1e-3", lambda m: lambda x: m(x).detach() + 1e-3)

    def boom(model):
        raise RuntimeError("no such kernel")

    broken = paths.Path("broken", "raises", boom)
    _fake_paths(monkeypatch, [wrong, close, broken])
    model = nnzoo.build("mlp_small", "torch", seed=0)
    fast = nnzoo.optimize(model, budget=BUDGET)
    status = {p["path"]: p for p in fast.report.paths}
    assert status["wrong"]["status"] == "mismatch" and "bound" in status["wrong"]["note"]
    assert status["slightly-off"]["status"] == "mismatch"
    assert status["broken"]["status"] == "failed" and "no such kernel" in status["broken"]["note"]
    assert fast.path in ("eager", "inference_mode")
    assert "wrong" not in fast.report.times_s


def _mock_rounds(monkeypatch: pytest.MonkeyPatch, times: dict[str, float]) -> None:
    """Timed rounds that report the given seconds per call instead of measuring."""
    def rounds(trials, inputs, deadline, update) -> None:
        for t in trials:
            if t.status == "ok":
                t.samples = [times[t.path.name]] * 3

    monkeypatch.setattr(tuning, "_rounds", rounds)


def test_the_fastest_correct_path_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mock timings: the lowest median wins, unless its outputs are wrong; near-ties (within
    `tuning.TIE`) go to the simplest path, which costs nothing to compile next time."""
    wrong = paths.Path("wrong", "fastest and wrong", lambda m: lambda x: torch.ones(len(x), 10))
    quick = paths.Path("quick", "right", lambda m: lambda x: m(x))
    _fake_paths(monkeypatch, [wrong, quick])
    model = nnzoo.build("mlp_small", "torch", seed=0)
    x = model.spec.example_input(2)
    _mock_rounds(monkeypatch, {"eager": 3e-3, "inference_mode": 2e-3, "wrong": 1e-4,
                               "quick": 1e-3})
    fast = nnzoo.optimize(model, x, budget=1.0, cache=False)
    assert fast.path == "quick" and fast.report.times_s["quick"] == 1e-3
    assert "wrong" not in fast.report.times_s
    assert "quick" in repr(fast) and "<- chosen" in str(fast.report)
    _mock_rounds(monkeypatch, {"eager": 1.01e-3, "inference_mode": 2e-3, "wrong": 1e-4,
                               "quick": 1e-3})
    assert nnzoo.optimize(model, x, budget=1.0, cache=False).path == "eager"  # within TIE


def test_paths_are_ranked_round_by_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """A load that rises mid-round (round 3: "quick" timed after it, "eager" before it) leaves
    "quick" with the higher median, though it was faster in four rounds of five: the paired
    ranking picks it, and the report shows each path's paired ratio."""
    quick = paths.Path("quick", "right", lambda m: lambda x: m(x))
    _fake_paths(monkeypatch, [quick], keep=1)
    samples = {"eager": [1.0, 1.0, 1.0, 2.1, 2.1], "quick": [0.95, 0.95, 2.0, 2.0, 2.0]}

    def rounds(trials, inputs, deadline, update) -> None:
        for t in trials:
            t.samples = [s * 1e-3 for s in samples[t.path.name]]

    monkeypatch.setattr(tuning, "_rounds", rounds)
    model = nnzoo.build("mlp_small", "torch", seed=0)
    fast = nnzoo.optimize(model, model.spec.example_input(2), budget=1.0, cache=False)
    assert fast.report.times_s["quick"] > fast.report.times_s["eager"]
    assert fast.path == "quick"
    paired = {p["path"]: p["paired"] for p in fast.report.paths}
    assert paired["eager"] == 1.0 and paired["quick"] == pytest.approx(2.0 / 2.1)
    assert "0.952x" in str(fast.report)


def test_budget_bounds_the_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slow paths: the ones past the budget are not tried, and the rounds stop in time."""
    def slow(model):
        def call(x):
            time.sleep(0.15)
            return model(x)
        return call

    _fake_paths(monkeypatch, [paths.Path(f"slow{i}", "sleeps", slow) for i in range(6)])
    model = nnzoo.build("mlp_small", "torch", seed=0)
    start = time.perf_counter()
    fast = nnzoo.optimize(model, budget=0.6)
    spent = time.perf_counter() - start
    skipped = [p for p in fast.report.paths if p["status"] == "skipped"]
    assert skipped and all("budget" in p["note"] for p in skipped)
    # each tried slow path costs 3 calls (first, warm, one round): the budget plus one path
    # under way plus one round bound the time
    assert spent < 0.6 + 4 * 0.45 + 1.0
    assert fast.path in ("eager", "inference_mode")


def test_compiled_paths_wait_for_a_budget_that_fits() -> None:
    model = nnzoo.build("mlp_small", "torch", seed=0)
    fast = nnzoo.optimize(model, budget=1.0)  # compile=None: torch.compile predicted at > 15 s
    compiled = [p for p in fast.report.paths if p["path"].startswith("compile")]
    assert compiled and all(p["status"] == "skipped" and "predicted" in p["note"]
                            for p in compiled)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile (inductor) needs a C++ compiler")
def test_torch_compile_matches() -> None:
    model = nnzoo.build("mlp_small", "torch", seed=0)
    x = model.spec.example_input(2, seed=1)
    want = _torch_reference(model, x)
    fast = nnzoo.optimize(model, autotune=False, compile=True)
    assert fast.path == "compile"
    _close(to_numpy(fast(torch.from_numpy(x))), want)


# ---- report, cache, arguments -------------------------------------------------------------------
def test_report_shows_the_choice_and_the_times() -> None:
    model = nnzoo.build("mlp_small", "torch", seed=0)
    fast = nnzoo.optimize(model, budget=BUDGET, compile=False)
    text, line = str(fast.report), repr(fast)
    assert fast.path in line and "(1, " in line and "float32" in line
    for p in fast.report.paths:
        assert p["path"] in text
    assert "<- chosen" in text and "cores" in text


CHILD = """
import json, sys, nnzoo, torch
torch.set_num_threads(1)
model = nnzoo.build("mlp_small", "torch", seed=0)
fast = nnzoo.optimize(model, budget=0.5, compile=False)
print(json.dumps({"source": fast.report.source, "choice": fast.path,
                  "tuned": "nnzoo.fast.tuning" in sys.modules, "times": fast.report.times_s}))
"""


def test_second_process_reuses_the_choice(cache_dir: Path) -> None:
    """The acceptance check: tuned here, then a new process with the same model and shape
    does no tuning (one child process: each costs seconds of imports)."""
    first = nnzoo.optimize(nnzoo.build("mlp_small", "torch", seed=0), budget=0.5, compile=False)
    assert first.report.source == "tuned"
    env = {**os.environ, "NNZOO_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, check=True, cwd=ROOT)
    second = json.loads(out.stdout.strip().splitlines()[-1])
    assert second["source"] == "cache" and not second["tuned"]  # tuning code never imported
    assert second["choice"] == first.path and second["times"] == first.report.times_s
    entry = next(iter(json.loads((cache_dir / "optimize.json").read_text()).values()))
    assert entry["report"]["inputs"] == [[[1, 32], "float32"]]


def test_cache_key_follows_shape_and_settings(cache_dir: Path) -> None:
    model = nnzoo.build("mlp_small", "torch", seed=0)
    x = model.spec.example_input(2)
    assert nnzoo.optimize(model, x, budget=0.3, compile=False).report.source == "tuned"
    assert nnzoo.optimize(model, x, budget=0.3, compile=False).report.source == "cache"
    for other in ({"example": model.spec.example_input(3)}, {"example": x, "budget": 0.4}):
        kwargs = {"budget": 0.3, **other}
        assert nnzoo.optimize(model, compile=False, **kwargs).report.source == "tuned"
    assert nnzoo.optimize(model, x, budget=0.3, compile=False, cache=False
                          ).report.source == "tuned"
    assert len(json.loads((cache_dir / "optimize.json").read_text())) == 3


def test_unreadable_cache_is_rewritten(cache_dir: Path) -> None:
    cache_dir.mkdir(parents=True)
    (cache_dir / "optimize.json").write_text("{not json")
    fast = nnzoo.optimize(nnzoo.build("mlp_small", "torch", seed=0), budget=0.3, compile=False)
    assert fast.report.source == "tuned"
    assert len(json.loads((cache_dir / "optimize.json").read_text())) == 1


def test_progress_is_quiet_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    nnzoo.optimize(nnzoo.build("mlp_small", "torch", seed=0), budget=0.3, compile=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kwargs", [{"budget": 0}, {"budget": "30"}, {"budget": True},
                                    {"compile": "yes"}, {"autotune": "no"}])
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(OptimizeError, match=next(iter(kwargs))):
        nnzoo.optimize(torch.nn.Linear(2, 2), **kwargs)


def test_not_a_model_is_refused() -> None:
    with pytest.raises(NotAModelError, match="torch.nn.Module or a keras.Model, got object"):
        nnzoo.optimize(object())


def test_an_example_the_model_cannot_take_is_an_input_error() -> None:
    model = nnzoo.build("mlp_small", "torch", seed=0)
    with pytest.raises(InputError, match=r"plain call fails on \(2, 5\)"):
        nnzoo.optimize(model, np.zeros((2, 5), np.float32), budget=0.3)
    with pytest.raises(InputError, match="cannot make a tensor of str"):
        nnzoo.optimize(model, "an image", budget=0.3)


def test_optimize_imports_no_framework() -> None:
    code = ("import sys, nnzoo; nnzoo.optimize; "
            "print('torch' in sys.modules, 'tensorflow' in sys.modules, 'jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


# ---- Keras, on whichever backend this process runs ----------------------------------------------
def _keras_case(name: str, batch: int = 3) -> tuple:
    model = nnzoo.build(name, "keras", seed=0)
    x = to_keras(model.spec.example_input(batch, seed=1), model.spec.input_kind)
    return model, x, to_numpy(model(x, training=False))


# Built once per module: a Keras build costs seconds on JAX, and no test here changes weights.
@pytest.fixture(scope="module")
def keras_cnn() -> tuple:
    return _keras_case("cnn_small")


@pytest.fixture(scope="module")
def keras_mlp() -> tuple:
    return _keras_case("mlp_small")


#: each Keras backend's paths, simplest first: its own compiler among them
KERAS_PATHS = {"tensorflow": ["eager", "function", "predict", "xla"],
               "jax": ["eager", "jit", "predict"],
               "torch": ["eager", "inference_mode", "predict", "compile"]}


@pytest.mark.keras
def test_keras_tuned_path_matches_inference_call(keras_mlp: tuple) -> None:
    """Tuned on the small MLP (the image paths are each checked on the CNN below)."""
    from nnzoo.backends import keras_backend

    model, x, want = keras_mlp
    fast = nnzoo.optimize(model, x, budget=BUDGET, compile=False)
    assert fast.backend == "keras" and fast.model is model
    _close(to_numpy(fast(x)), want)
    assert [p["path"] for p in fast.report.paths] == KERAS_PATHS[keras_backend()]
    assert fast.report.backend == f"keras/{keras_backend()}"
    assert fast.report.choice in fast.report.times_s


@pytest.mark.keras
def test_keras_every_path_of_this_backend_matches(keras_cnn: tuple) -> None:
    """Each path, the backend's compiler included (XLA on TensorFlow, jax.jit on JAX), computes
    `model(x, training=False)`; torch.compile of a Keras model is the slow test below."""
    import keras

    model, x, want = keras_cnn
    xt = keras.ops.convert_to_tensor(x)
    for path in paths.paths_for(model):
        if path.name == "compile":
            continue
        _close(to_numpy(path.make(model)(xt)), want)


@pytest.mark.keras  # not `slow`: the PyTorch pass of `make test` runs it (about 20 s)
def test_keras_torch_compile_matches(keras_mlp: tuple) -> None:
    from nnzoo.backends import keras_backend

    if keras_backend() != "torch":
        pytest.skip("torch.compile is a path of Keras's PyTorch backend only")
    model, x, want = keras_mlp
    fast = nnzoo.optimize(model, autotune=False, compile=True)
    assert fast.path == "compile"
    _close(to_numpy(fast(x)), want)


@pytest.mark.keras
def test_keras_fixed_recipe_is_the_backends_compiler(keras_cnn: tuple) -> None:
    from nnzoo.backends import keras_backend

    model = keras_cnn[0]
    fast = nnzoo.optimize(model, autotune=False)
    assert fast.path == {"tensorflow": "function", "jax": "jit", "torch": "eager"}[keras_backend()]
    x, want = keras_cnn[1:]
    _close(to_numpy(fast(x)), want)
    xb = to_keras(model.spec.example_input(1, seed=1), "image")  # any batch size, one trace
    _close(to_numpy(fast(xb)), to_numpy(model(xb, training=False)))
    if keras_backend() == "tensorflow":
        assert fast._fn.experimental_get_tracing_count() == 1


@pytest.mark.keras
def test_keras_jit_survives_keras_predict(keras_mlp: tuple) -> None:
    """Keras's predict function donates the variables' buffers: the jit path reads them anew."""
    model, x, want = keras_mlp
    fast = nnzoo.optimize(model, autotune=False)
    model.predict_on_batch(x)
    _close(to_numpy(fast(x)), want)


@pytest.mark.keras
def test_keras_signature_keeps_free_spatial_axes() -> None:
    """A ResNet takes any image size; the tf.function path must too, without retracing."""
    from nnzoo.backends import keras_backend

    if keras_backend() != "tensorflow":
        pytest.skip("tf.function signatures exist on Keras's TensorFlow backend only")
    model = nnzoo.build("resnet18", "keras", seed=0, widths=(4, 4, 4, 4), num_classes=3)
    (sig,) = paths.input_signature(model)
    assert tuple(sig.shape) == (None, None, None, 3)
    x = to_keras(model.spec.example_input(2, seed=0), "image")[:, :64, :48]
    _close(to_numpy(nnzoo.optimize(model, autotune=False)(x)), to_numpy(model(x, training=False)))


@pytest.mark.keras
def test_keras_plain_functional_model_is_accepted() -> None:
    import keras

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    fast = nnzoo.optimize(model, x, budget=BUDGET, compile=False)
    _close(to_numpy(fast(x)), to_numpy(model(x, training=False)))
    assert fast.report.source == "tuned"
    assert nnzoo.optimize(model, x, budget=BUDGET, compile=False).report.source == "cache"


@pytest.mark.keras
def test_keras_wrong_path_is_rejected_and_bad_example_refused(
        keras_mlp: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """On every Keras backend: a fast but wrong path is checked out, and an example the model
    cannot take is an nnzoo InputError, not the backend's own exception."""
    import keras

    model, x, want = keras_mlp
    wrong = paths.Path("wrong", "fastest and wrong",
                       lambda m: lambda x: keras.ops.zeros((x.shape[0], 10)))
    _fake_paths(monkeypatch, [wrong], keep=1)  # the plain call only: no compile to wait for
    _mock_rounds(monkeypatch, {"eager": 2e-3, "wrong": 1e-5})
    fast = nnzoo.optimize(model, x, budget=BUDGET, cache=False)
    status = {p["path"]: p["status"] for p in fast.report.paths}
    assert status["wrong"] == "mismatch" and fast.path != "wrong"
    _close(to_numpy(fast(x)), want)
    with pytest.raises(InputError, match="plain call fails"):
        nnzoo.optimize(model, np.zeros((2, 7), np.float32), budget=BUDGET, cache=False)
