"""Keras 3 on each of its backends: choosing one, refusing a second, and files that cross them.

Keras picks its backend once per process, so everything here that needs another backend runs in
a subprocess of its own (`KERAS_BACKEND=...`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nnzoo
from nnzoo import backends
from nnzoo.errors import BackendError, InputShapeError, KerasBackendError

KERAS_BACKENDS = list(backends.KERAS_BACKENDS)
#: models with custom Keras layers (recurrent cells, attention, positions) and batch norm
CROSS_MODELS = ["cnn_small", "transformer_small", "bilstm"]


def python(code: str, keras_backend: str, *args: str,
           timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """`python -c code args...` with Keras on `keras_backend`, from the repository root."""
    env = {**os.environ, "KERAS_BACKEND": keras_backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).parent.parent)


@pytest.mark.keras
def test_the_active_keras_backend_is_reported() -> None:
    nnzoo.build("mlp_small", "keras")
    import keras

    assert nnzoo.keras_backend() == keras.backend.backend() == os.environ["KERAS_BACKEND"]
    assert "keras" in nnzoo.available_backends()


@pytest.mark.keras
def test_a_second_keras_backend_is_refused_by_name() -> None:
    nnzoo.build("mlp_small", "keras")
    other = next(b for b in KERAS_BACKENDS if b != nnzoo.keras_backend())
    with pytest.raises(KerasBackendError, match=f"KERAS_BACKEND={other}"):
        nnzoo.use_keras_backend(other)
    assert nnzoo.use_keras_backend(nnzoo.keras_backend()) == nnzoo.keras_backend()
    with pytest.raises(BackendError, match="keras/tensorflow, keras/jax, keras/torch"):
        nnzoo.use_keras_backend("theano")


def test_an_unknown_or_missing_keras_backend_is_named_before_keras_loads() -> None:
    code = ("import nnzoo\n"
            "try:\n    nnzoo.build('mlp_small', 'keras')\n"
            "except nnzoo.NnzooError as e:\n    print(type(e).__name__, e)\n"
            "import sys; print('keras' in sys.modules)")
    out = python(code, "theano").stdout
    assert "BackendError" in out and "keras/jax" in out and out.strip().endswith("False")
    hide_jax = ("import importlib.util as u; real = u.find_spec\n"
                "u.find_spec = lambda n, *a: None if n.split('.')[0] in ('jax', 'jaxlib') "
                "else real(n, *a)\n")
    out = python(hide_jax + code, "jax").stdout
    assert "BackendNotInstalledError" in out and 'nnzoo[keras-jax]' in out, out


#: One step of the round: on the active Keras backend, read what other backends wrote (each file's
#: outputs against the writer's own), then optionally write this backend's files. Runs in this
#: process for the pass's own backend and in a subprocess for the others.
STEP = """
import json, sys
sys.path.insert(0, 'tests')
from test_keras_backends import keras_files_step
print(json.dumps(keras_files_step(sys.argv[1].split(','), sys.argv[2], sys.argv[3:])))
"""


def keras_files_step(names: list[str], write: str, read: list[str]) -> dict[str, list[float]]:
    """Load each folder in `read` (`.keras`, and `.weights.h5` into a fresh build): max |diff|
    against the writer's outputs. Then save `names` into `write` (if given) with their outputs."""
    import keras
    import numpy as np

    import nnzoo.keras_impl  # noqa: F401  (registers the custom layers for load_model)
    from nnzoo.runtime import run

    diffs = {}
    for folder in read:
        want = json.loads((Path(folder) / "want.json").read_text())
        for name in names:
            loaded = keras.models.load_model(f"{folder}/{name}.keras")
            fresh = nnzoo.build(nnzoo.get_spec(name).quick(), "keras")
            fresh.load_weights(f"{folder}/{name}.weights.h5")
            x = loaded.spec.example_input(2, seed=5)
            diffs[f"{folder} {name}"] = [float(np.max(np.abs(run(m, x) - np.array(want[name]))))
                                         for m in (loaded, fresh)]
    if write:
        outputs = {}
        for name in names:
            m = nnzoo.build(nnzoo.get_spec(name).quick(), "keras")
            m.save(f"{write}/{name}.keras")
            m.save_weights(f"{write}/{name}.weights.h5")
            outputs[name] = run(m, m.spec.example_input(2, seed=5)).tolist()
        (Path(write) / "want.json").write_text(json.dumps(outputs))
    return diffs


def test_keras_files_cross_keras_backends(tmp_path: Path) -> None:
    """`.keras` and `.weights.h5` written on one Keras backend load on each other one, with the
    same outputs (float32: each backend's kernels round their own way). The pass's own backend
    works in this process; each other one starts twice (write, then read what came after it)."""
    here = nnzoo.keras_backend()
    order = [here] + [kb for kb in KERAS_BACKENDS if kb != here]
    folders = {kb: tmp_path / kb for kb in order}
    for folder in folders.values():
        folder.mkdir()

    def step(kb: str, write: bool, read: list[str]) -> dict[str, list[float]]:
        out = str(folders[kb]) if write else ""
        sources = [str(folders[r]) for r in read]
        if kb == here:
            return keras_files_step(CROSS_MODELS, out, sources)
        done = python(STEP, kb, ",".join(CROSS_MODELS), out, *sources)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    results: dict[str, dict[str, list[float]]] = {kb: {} for kb in order}
    for i, kb in enumerate(order):  # each reads every earlier writer, then writes its own
        results[kb].update(step(kb, True, order[:i]))
    for i, kb in enumerate(order[:-1]):  # and every later one
        results[kb].update(step(kb, False, order[i + 1:]))
    for reader, found in results.items():
        assert len(found) == (len(order) - 1) * len(CROSS_MODELS), (reader, sorted(found))
        for where, diffs in found.items():
            assert max(diffs) <= 1e-4, f"read on {reader}: {where}: {diffs}"


@pytest.mark.keras
def test_a_compiled_run_is_the_eager_run() -> None:
    """`run(compiled=True)`, which the numeric and export checks use (one `jax.jit` of the
    stateless call on JAX; the eager call elsewhere): the eager output within float32 rounding
    for a batch-norm, a recurrent and an attention model, the input checked as the model's own
    call checks it; on JAX one compiled program per model and input shape, reused after new
    weights are loaded, and dropped with the model."""
    import gc
    import weakref

    import numpy as np

    from conftest import tiny_per_family
    from nnzoo import runtime
    from nnzoo.conversion import load_state_dict, state_dict

    specs = [s for s in tiny_per_family() if s.family in ("resnet", "recurrent", "transformer")]
    assert len(specs) == 3
    for spec in specs:
        model = nnzoo.build(spec, "keras", seed=0)
        x = spec.example_input(2)
        eager = runtime.run(model, x)
        np.testing.assert_allclose(runtime.run(model, x, compiled=True), eager, rtol=1e-5,
                                   atol=1e-6 * max(1.0, float(np.abs(eager).max())))
        with pytest.raises(InputShapeError):
            runtime.run(model, x[None], compiled=True)
        if backends.keras_backend() != "jax":
            continue
        fn = runtime._JITTED[model]
        load_state_dict(model, state_dict(nnzoo.build(spec, "keras", seed=1)))
        moved = runtime.run(model, x, compiled=True)
        assert runtime._JITTED[model] is fn and fn._cache_size() == 1
        assert not np.allclose(moved, eager), "the new weights were not used"
        ref = weakref.ref(model)
        del model, fn
        gc.collect()
        assert ref() is None, "the compiled function kept its model alive"


@pytest.mark.keras
def test_checks_compile_grouped_convolutions_without_dense_expansion() -> None:
    """XLA's CPU compiler runs a batch-grouped convolution (JAX's kernel gradient of a grouped
    one) expanded into a dense C x C convolution, and every float64 grouped convolution too,
    scratch for each layer kept alive at once. `nnzoo.xla.xla_jit`, which compiles the checks'
    programs, rewrites batch groups as the equivalent feature groups, bit for bit, turns the
    expansion off and schedules for memory: over 12 float64 depthwise layers the same
    gradients (to rounding) in under one layer's dense scratch, where `jax.jit` holds one a layer.
    The XLA flag the README gives users for their own programs (the scheduler alone) keeps the
    expansion but frees each layer's before the next."""
    if backends.keras_backend() != "jax":
        pytest.skip("XLA's CPU programs: Keras on JAX")
    import jax
    import numpy as np

    if jax.default_backend() != "cpu":
        pytest.skip("xla_jit's options are for XLA's CPU compiler")
    from helpers import DEPTHWISE_CHAIN, depthwise_chain, depthwise_scratch

    from nnzoo import xla

    channels, k, depth = DEPTHWISE_CHAIN
    dense = channels * channels * k * k * 8  # bytes: one layer's dense float64 kernel
    with backends.float64_scope():
        lhs = jax.random.normal(jax.random.key(0), (6, 5, 5, 2), "float64")
        rhs = jax.random.normal(jax.random.key(1), (3, 3, 2, 6), "float64")
        dims = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
        grouped = jax.lax.conv_general_dilated(lhs, rhs, (2, 1), [(1, 0), (0, 2)],
                                               rhs_dilation=(1, 2), dimension_numbers=dims,
                                               batch_group_count=3)
        params = {"window_strides": (2, 1), "padding": ((1, 0), (0, 2)), "lhs_dilation": (1, 1),
                  "rhs_dilation": (1, 2), "precision": None, "preferred_element_type": None,
                  "out_sharding": None}
        rewritten = xla.feature_grouped(lhs, rhs, batch_group_count=3, feature_group_count=1,
                                        dimension_numbers=dims, **params)
        np.testing.assert_array_equal(np.asarray(rewritten), np.asarray(grouped))
        loss, kernels, x = depthwise_chain()
        want = jax.jit(jax.grad(loss))(kernels, x)
        got = xla.xla_jit(jax.grad(loss))(kernels, x)
        scale = max(float(abs(w).max()) for w in want)
        assert max(float(abs(g - w).max()) for g, w in zip(got, want)) <= 1e-12 * scale
        lean, default = depthwise_scratch(xla.xla_jit), depthwise_scratch(jax.jit)
    assert lean < dense, (lean, dense)
    assert default >= depth / 2 * dense, f"XLA's default scheduler changed: {default}, {dense}"
    flag = "--xla_cpu_scheduler_type=" + xla.XLA_CPU_OPTIONS["xla_cpu_scheduler_type"]
    code = ("import sys, jax; sys.path.insert(0, 'tests'); from helpers import depthwise_scratch;"
            " jax.config.update('jax_enable_x64', True); print(depthwise_scratch(jax.jit))")
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flag}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) <= 3 * dense, out.stdout
