"""A user's process, fresh: eight threads build, convert and run one model of every family in both
backends at once (so that the frameworks' first import happens from every thread together), then
the same builds are made alone, then a grouped convolution is called repeatedly.

Checked on that one run (one process start, shared by the two guarantees):
- concurrency: nothing fails, and every seeded build has the weights -- bit for bit -- and the
  outputs of the same build made alone;
- quiet: nothing is printed that the user did not print -- no Python warning (default filters),
  no framework log line, nothing written to file descriptor 2 by C++ code -- with the user's
  environment (no TF_CPP_MIN_LOG_LEVEL: the test session sets it, a user's shell does not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nnzoo
from conftest import tiny_per_family

pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parents[1]

#: Run as `python -c SCRIPT SPECS_JSON GROUPED_JSON ONE_TOKEN_JSON`; prints one JSON line.
SCRIPT = r'''
import hashlib, json, sys, threading, time
T0 = time.perf_counter()

import numpy as np

import nnzoo
from nnzoo.conversion import state_dict
from nnzoo.layout import to_keras
from nnzoo.runtime import run

specs = [nnzoo.spec_from_dict(d) for d in json.loads(sys.argv[1])]
noise = specs[0]  # an unseeded build in every job: it draws from the global generators
THREADS = 8


def digest(model):
    weights = state_dict(model)
    return hashlib.sha256(b"".join(np.ascontiguousarray(weights[k]).tobytes()
                                   for k in sorted(weights))).hexdigest()


def job(i, backend, noisy=True):
    if noisy:
        nnzoo.build(noise, backend)
    model = nnzoo.build(specs[i], backend, seed=0)
    x = specs[i].example_input(2)
    twin = nnzoo.convert(model, "keras" if backend == "torch" else "torch")
    return digest(model), run(model, x), run(twin, x)


# every (family, backend), dealt round-robin: each thread builds different families in turn
jobs = [(i, backend) for backend in ("torch", "keras") for i in range(len(specs))]
found, errors = [], []
barrier = threading.Barrier(THREADS)


def worker(t):
    barrier.wait()  # the first use of both frameworks, from every thread at once
    for i, backend in jobs[t::THREADS]:
        try:
            found.append((i, backend, job(i, backend)))
        except Exception as exc:
            errors.append(f"{specs[i].family}/{backend}: {type(exc).__name__}: {exc}"[:300])


threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()

alone, mismatches = {}, []
for i, backend, (weights, y, y_twin) in found:
    if (i, backend) not in alone:
        alone[i, backend] = job(i, backend, noisy=False)  # the same, with no other thread running
    ref = alone[i, backend]
    what = f"{specs[i].family}/{backend}"
    if weights != ref[0]:
        mismatches.append(f"{what}: seeded weights differ from the single-threaded build")
    if not (np.array_equal(y, ref[1]) and (y_twin is None or np.array_equal(y_twin, ref[2]))):
        mismatches.append(f"{what}: outputs differ from the single-threaded run")

# Keras runs a grouped convolution through a new tf.function per eager call; TensorFlow warns
# about the retracing from the fifth call on (the leak this run also checks).
if nnzoo.keras_backend() == "tensorflow":  # the other backends have no such function
    grouped = nnzoo.spec_from_dict(json.loads(sys.argv[2]))
    model, x = nnzoo.build(grouped, "keras"), grouped.example_input(2)
    for _ in range(6):
        model(to_keras(x, grouped.input_kind), training=False)

# One token (a length-1 sequence, a single-patch ViT): attention's softmax runs over one key,
# which Keras warns about when called plainly.
for edge in (nnzoo.spec_from_dict(d) for d in json.loads(sys.argv[3])):
    run(nnzoo.build(edge, "keras"), edge.example_input(2))

print(json.dumps({"seconds": round(time.perf_counter() - T0, 1), "errors": errors,
                  "mismatches": mismatches, "jobs": len(found),
                  "combinations": len(alone)}))
'''


@pytest.fixture(scope="module")
def user_process() -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    specs = tiny_per_family()
    grouped = nnzoo.get_spec("resnext50_32x4d", layers=(1,), widths=(8,), groups=2,
                             base_width=32, stem="cifar", stem_width=8, image_size=(16, 16))
    one_token = ([s.replace(seq_len=1) for s in specs if s.family == "transformer"]
                 + [s.replace(image_size=(s.patch_size, s.patch_size), class_token=False)
                    for s in specs if s.family == "vit"])
    assert len(one_token) == 2
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    env["OMP_NUM_THREADS"] = "1"  # tiny models: PyTorch's thread hand-offs cost more than the work
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps([s.to_dict() for s in specs]),
         json.dumps(grouped.to_dict()), json.dumps([s.to_dict() for s in one_token])],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    return proc, specs


def test_eight_threads_build_convert_and_run_every_family_reproducibly(
        user_process: tuple[subprocess.CompletedProcess[str], list[Any]]) -> None:
    proc, specs = user_process
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["mismatches"] == []
    assert result["jobs"] == result["combinations"] == 2 * len(specs)


def test_building_and_calling_models_prints_nothing(
        user_process: tuple[subprocess.CompletedProcess[str], list[Any]]) -> None:
    proc, _ = user_process
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1  # the script's own result line
