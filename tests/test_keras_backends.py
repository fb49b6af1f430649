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
from nnzoo.errors import BackendError, KerasBackendError

KERAS_BACKENDS = list(backends.KERAS_BACKENDS)
#: models with custom Keras layers (recurrent cells, attention, positions) and batch norm
CROSS_MODELS = ["cnn_small", "transformer_small", "bilstm"]


def python(code: str, keras_backend: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KERAS_BACKEND": keras_backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).parent.parent)


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


WRITE = """
import json, sys, numpy as np, nnzoo
from nnzoo.runtime import run
out = {}
for name in sys.argv[1].split(','):
    m = nnzoo.build(nnzoo.get_spec(name).quick(), 'keras')
    m.save(f'{sys.argv[2]}/{name}.keras'); m.save_weights(f'{sys.argv[2]}/{name}.weights.h5')
    out[name] = run(m, m.spec.example_input(2, seed=5)).tolist()
print(json.dumps(out))
"""
READ = """
import json, sys, numpy as np, keras, nnzoo
import nnzoo.keras_impl
from nnzoo.runtime import run
out = {}
for folder in sys.argv[2:]:
    want = json.loads(open(f'{folder}/want.json').read())
    for name in sys.argv[1].split(','):
        loaded = keras.models.load_model(f'{folder}/{name}.keras')
        fresh = nnzoo.build(nnzoo.get_spec(name).quick(), 'keras')
        fresh.load_weights(f'{folder}/{name}.weights.h5')
        x = loaded.spec.example_input(2, seed=5)
        out[f'{folder} {name}'] = [float(np.max(np.abs(run(m, x) - np.array(want[name]))))
                                   for m in (loaded, fresh)]
print(json.dumps(out))
"""


def test_keras_files_cross_keras_backends(tmp_path: Path) -> None:
    """`.keras` and `.weights.h5` written on one Keras backend load on each other one, with the
    same outputs (float32: each backend's kernels round their own way)."""
    names = ",".join(CROSS_MODELS)
    for kb in KERAS_BACKENDS:
        (tmp_path / kb).mkdir()
        done = subprocess.run([sys.executable, "-c", WRITE, names, str(tmp_path / kb)],
                              env={**os.environ, "KERAS_BACKEND": kb}, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        (tmp_path / kb / "want.json").write_text(done.stdout.strip().splitlines()[-1])
    for reader in KERAS_BACKENDS:
        writers = [str(tmp_path / w) for w in KERAS_BACKENDS if w != reader]
        done = subprocess.run([sys.executable, "-c", READ, names, *writers],
                              env={**os.environ, "KERAS_BACKEND": reader}, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        results = json.loads(done.stdout.strip().splitlines()[-1])
        assert len(results) == len(writers) * len(CROSS_MODELS)
        for where, diffs in results.items():
            assert max(diffs) <= 1e-4, f"read on {reader}: {where}: {diffs}"
