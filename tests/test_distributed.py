"""Data-parallel training: the frameworks' own engines give one process's result.

PyTorch: every family's smallest model (shrunk as in test_training), float64, 3 steps of
SGD-momentum on global batches of 4, `DistributedDataParallel` over gloo in 2 CPU processes
against one process -- all families in one launch, with batch norm synchronized and per worker.
A launch that cannot start its workers, or loses one, raises `DistributedError` and leaves no
process behind.
"""

from __future__ import annotations

import copy
import os
import socket

import numpy as np
import pytest
from test_training import tiny

from conftest import smallest_per_family
from nnzoo.distributed import DataParallelReport, data_parallel_parity
from nnzoo.errors import DistributedError, SpecError
from nnzoo.launch import Workers

SPECS = [tiny(name) for name in smallest_per_family()]
BN_FAMILIES = {"resnet", "unet", "hybrid", "mobilenet", "efficientnet"}


def _gone(pids: tuple[int, ...]) -> None:
    """Neither the workers nor anything in their sessions is left."""
    assert pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def test_ddp_and_fsdp_match_one_process_for_every_family() -> None:
    """DDP and FSDP's `fully_shard`: with synchronized batch norm every family ends within the
    parity bound of one process (and the replicas agree); with batch norm per worker, the BN
    families measurably do not."""
    report = data_parallel_parity(SPECS, sync_bn=(True, False), torch_engines=("ddp", "fsdp"))
    print(report)  # the measured differences, with `pytest -s`
    assert report.ok, str(report)
    assert {c.family for c in report.cases} == {s.family for s in SPECS}
    assert {c.compared for c in report.cases} == {"PyTorch DDP vs one process",
                                                  "PyTorch FSDP vs one process"}
    assert len(report.cases) == 4 * len(SPECS)
    assert {c.family for c in report.cases if c.batchnorm} == BN_FAMILIES
    for c in report.cases:
        assert len(c.loss_parallel) == 3 and c.loss_single[0] != c.loss_single[-1]  # it trained
        if c.expected_equal:
            assert c.ok and c.replica_diff <= c.bound, c
        else:  # per-worker statistics: trainable weights and running statistics both move apart
            assert c.param_diff > 1e-4 and c.weight_diff > 1e-3 and c.replica_diff > 1e-3, c


#: The Keras cases compile every model's step twice (distributed and not), each Keras run in a
#: process of its own beside the PyTorch launch: every family, measured in a full `make test` on
#: a 2-core machine at 80 s on JAX and 51 s on TensorFlow.
DDP, ONE = "PyTorch DDP vs one process", "vs one device"


def _per_family(report: DataParallelReport, kinds: tuple[str, ...]) -> None:
    """Every family has a case of every kind, and every case trained (its loss moved)."""
    for kind in kinds:
        assert {c.family for c in report.cases if c.compared == kind} == {s.family for s in SPECS}
    for c in report.cases:
        assert c.loss_single[0] != c.loss_single[-1], c


def test_keras_data_parallel_on_jax_matches_one_device_and_pytorch_ddp() -> None:
    """Keras `DataParallel` over 2 host devices (a JAX process of its own) against one device,
    and against PyTorch DDP from the same weights on the same batches, for every family: all
    within the bound. On JAX batch norm needs no synchronizing: the program is one, over the
    global batch."""
    pytest.importorskip("jax")
    report = data_parallel_parity(SPECS, backend="both")
    print(report)
    assert report.ok, str(report)
    keras = "Keras DataParallel (JAX)"
    _per_family(report, (DDP, f"{keras} {ONE}", f"PyTorch DDP vs {keras}"))
    assert all(c.ok for c in report.cases), str(report)
    assert any(c.batchnorm for c in report.cases)


def test_keras_data_parallel_spans_jax_processes_as_it_would_machines() -> None:
    """Two JAX processes joined by `keras.distribution.initialize` (the several-machine set-up,
    on one machine: one host device each) and one `DataParallel` over both: within the bound of
    one device, and both processes end with the same weights. A batch-norm family and one
    without (measured: 24 s on a loaded 2-core machine)."""
    pytest.importorskip("jax")
    specs = [s for s in SPECS if s.family in ("mlp", "resnet")]
    report = data_parallel_parity(specs, backend="keras", keras_processes=2)
    print(report)
    assert report.ok, str(report)
    assert {c.compared for c in report.cases} == {
        "Keras DataParallel (JAX, 2 processes) vs one device"}
    assert sorted(c.batchnorm for c in report.cases) == [False, True]
    for c in report.cases:
        assert c.ok and c.replica_diff <= c.bound and c.loss_single[0] != c.loss_single[-1], c


def test_keras_mirrored_strategy_on_tensorflow_matches_one_device_and_pytorch_ddp() -> None:
    """`tf.distribute.MirroredStrategy` over 2 logical CPU devices (a TensorFlow process of its
    own), every family: within the bound of one device with Keras's synchronized batch norm; per
    replica, the BN families measurably not. Against PyTorch DDP from the same start, within the
    bound either way: per replica and per worker are the same maths in both frameworks."""
    pytest.importorskip("tensorflow")
    report = data_parallel_parity(SPECS, backend="both", keras_backend="tensorflow",
                                  sync_bn=(True, False))
    print(report)
    assert report.ok, str(report)
    keras = "Keras MirroredStrategy (TF)"
    cross = f"PyTorch DDP vs {keras}"
    _per_family(report, (DDP, f"{keras} {ONE}", cross))
    for c in report.cases:
        if c.expected_equal or c.compared == cross:
            assert c.ok, c
        else:
            assert c.param_diff > 1e-4 and c.weight_diff > 1e-3, c
    assert {c.family for c in report.cases if not c.expected_equal} == BN_FAMILIES


def test_sync_batchnorm_is_batchnorm_outside_a_process_group() -> None:
    import torch

    from nnzoo.torch_impl.distributed import SyncBatchNorm, synchronize_batchnorm

    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.3))
    plain[1].running_mean.fill_(0.5)
    synced = synchronize_batchnorm(copy.deepcopy(plain))
    assert isinstance(synced[1], SyncBatchNorm) and synced[1].momentum == 0.3
    assert list(synced.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 3, 6, 6)
    for mode in (True, False):
        plain.train(mode), synced.train(mode)
        torch.testing.assert_close(synced(x), plain(x))


def test_a_port_in_use_is_refused_before_any_worker_starts() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(DistributedError, match=f"port {port} .* is in use"):
            data_parallel_parity(SPECS[:1], port=port)


def test_a_port_taken_after_the_check_fails_clearly_and_leaves_nothing() -> None:
    """The race the check cannot close: the rendezvous port is taken when rank 0 binds it."""
    from nnzoo.distributed import make_job

    job, _ = make_job(SPECS[:1], world=2, steps=1, batch=2, optimizer="sgd", sync_bn=True,
                      seed=0, dtype="float64", timeout=60)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with Workers("nnzoo.torch_impl.distributed", job, world=2, port=port,
                     timeout=60) as workers, pytest.raises(DistributedError) as info:
            workers.wait()
    assert f"port {port}" in str(info.value) and "in use" in str(info.value)
    assert info.value.rank == 0
    _gone(info.value.pids)


def test_a_crashing_worker_fails_clearly_and_leaves_nothing() -> None:
    with pytest.raises(DistributedError, match="worker rank 1 of 2 .* exited with status 3") as info:
        data_parallel_parity(SPECS[:1], _crash_rank=1, timeout=60)
    assert info.value.rank == 1
    _gone(info.value.pids)


def test_a_worker_ends_when_its_launcher_is_killed() -> None:
    """A launcher killed with SIGKILL cleans nothing up: its workers end on their own."""
    import signal
    import subprocess
    import sys
    import time

    code = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'from nnzoo.runtime import "
            "exit_with_parent as e; import time; e(0.1); time.sleep(60)'], "
            "env={**os.environ, 'NNZOO_PARENT_PID': str(os.getpid())})\n"
            "print(child.pid, flush=True)\ntime.sleep(60)\n")
    launcher = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    worker = int(launcher.stdout.readline())
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    launcher.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived its launcher")


def test_a_missing_engine_package_is_named_before_any_worker_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from nnzoo import backends
    from nnzoo.errors import BackendNotInstalledError

    real = backends._installed
    monkeypatch.setattr(backends, "_installed", lambda package: package != "jax" and real(package))
    with pytest.raises(BackendNotInstalledError, match=r"nnzoo\[keras-jax\]"):
        data_parallel_parity(SPECS[:1], backend="keras")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"batch": 5}, "batch"), ({"world": 1}, "world"), ({"steps": 0}, "steps"),
    ({"backend": "tensorflow"}, "backend"), ({"port": 70000}, "port"),
    ({"sync_bn": "yes"}, "sync_bn"), ({"dtype": "float16"}, "dtype"),
    ({"backend": "keras", "keras_backend": "torch"}, "keras_backend"),
    ({"backend": "keras", "sync_bn": False}, "sync_bn"), ({"torch_engines": "ddp"}, "torch_engines"),
    ({"backend": "keras", "keras_processes": 3}, "keras_processes"),
    ({"backend": "keras", "keras_processes": 0}, "keras_processes"),
    ({"backend": "keras", "keras_backend": "tensorflow", "keras_processes": 2}, "keras_processes"),
])
def test_bad_arguments_are_named_before_any_worker_starts(kwargs: dict, field: str) -> None:
    with pytest.raises(SpecError, match=field):
        data_parallel_parity(SPECS[:1], **kwargs)


def test_cli_trains_data_parallel_with_progress_from_rank_0_only(
        capfd: pytest.CaptureFixture[str]) -> None:
    from nnzoo.cli import main

    status = main(["train", "mlp_small", "hidden_sizes=[8]", "--backend", "torch",
                   "--data-parallel", "2", "--steps", "2", "--batch", "4"])
    out, err = capfd.readouterr()
    assert status == 0, out + err
    assert "PyTorch DDP (gloo), 2 workers x 2 examples, 2 steps" in out
    steps = [line for line in out.splitlines() if ": step " in line]
    assert [line.split("  ")[0] for line in steps] == ["mlp_small: step 1/2", "mlp_small: step 2/2"]
    assert "done in" in out


def test_cli_refuses_keras_data_parallel_on_keras_torch() -> None:
    """Keras has no data-parallel engine on its PyTorch backend (checked in a fresh process)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "nnzoo", "train", "mlp_small", "--backend",
                           "keras", "--data-parallel", "2"], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "torch"}, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no data-parallel engine on its PyTorch backend" in proc.stderr


def _printed_command(out: str, values: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command `--write-job` printed (its indented line), its placeholders filled in:
    (argv, the environment assignments in front of it)."""
    import shlex
    import sys
    from pathlib import Path

    line = next(x for x in out.splitlines() if x.startswith("  "))
    env, argv = {}, []
    for token in shlex.split(line):
        key, eq, value = token.partition("=")
        if eq and not argv and key.isupper():
            env[key] = values.get(value, value)
        else:
            here = Path(sys.executable).parent  # this environment's python and torchrun
            argv.append(str(here / token) if token in ("python", "torchrun") and not argv
                        else values.get(token, token))
    return argv, env


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_a_written_job_starts_as_its_printed_command_says(
        backend: str, tmp_path, capfd: pytest.CaptureFixture[str]) -> None:
    """`nnzoo train --write-job` (the several-machine set-up), started here as the printed
    command says with one machine of two workers: PyTorch's under torchrun, Keras's as two JAX
    processes joined through KERAS_DISTRIBUTION_*. Every worker writes its result, and the
    workers end with the same weights."""
    import subprocess

    from nnzoo.cli import main
    from nnzoo.launch import free_port
    from nnzoo.runtime import load_results

    if backend == "keras":
        pytest.importorskip("jax")
    job = str(tmp_path / "job.json")
    status = main(["train", "mlp_small", "hidden_sizes=[8]", "--backend", backend,
                   "--data-parallel", "2", "--steps", "2", "--batch", "4", "--write-job", job])
    out = capfd.readouterr().out
    assert status == 0 and "(M x P = --data-parallel = 2)" in out, out
    port = str(free_port())
    machines = "1" if backend == "torch" else "2"  # torchrun starts both workers of one machine
    argv, env = _printed_command(out, {
        "M": machines, "P": "2", "ID": "test", "HOST:PORT": f"127.0.0.1:{port}",
        "OUTDIR": str(tmp_path)})
    env = {**os.environ, **env}
    if backend == "torch":
        envs = [env]
    else:  # two JAX processes here, as on two machines, one host device each
        assert env["KERAS_DISTRIBUTION_PROCESS_ID"] == "i" and env["KERAS_BACKEND"] == "jax"
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
        envs = [{**env, "KERAS_DISTRIBUTION_PROCESS_ID": str(i)} for i in range(2)]
    procs = [subprocess.Popen(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for e in envs]
    try:
        logs = [p.communicate(timeout=300)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(x[-3000:] for x in logs)
    results = [load_results(tmp_path / f"rank{r}.npz", 1)[0] for r in (0, 1)]
    assert results[0]["losses"] == results[1]["losses"] and len(results[0]["losses"]) == 2
    for key, value in results[0]["state"].items():
        np.testing.assert_array_equal(value, results[1]["state"][key])
