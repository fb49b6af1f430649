"""Starting, watching and stopping worker processes: the launcher under `nnzoo.distributed`.

`Workers` starts `world` processes of `python -m MODULE JOB.json OUTDIR` with torchrun's
environment, each in a session of its own; a worker that cannot start or dies stops them all
and raises `DistributedError` naming it; leaving the block kills and reaps whatever still runs.
No framework is imported here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nnzoo.errors import DistributedError, SpecError

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def check_port(port: object) -> int:
    """`port` if it is a valid port number that nothing holds on the loopback interface."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise SpecError("port", port, "must be an integer in [1, 65535], or None for a free one")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as exc:
            raise DistributedError(f"port {port} on {HOST} is in use ({exc.strerror}): the "
                                   "workers' rendezvous needs a free one; pass another port, or "
                                   "none to have one picked") from None
    return port


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class Workers:
    """`world` processes of `python -m MODULE JOB OUTDIR`, with torchrun's environment (RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK), each in a session of its own so that it
    and anything it starts can be stopped together. Use as a context manager: on leaving, every
    worker still running is killed and reaped, whatever happened."""

    def __init__(self, module: str, job: dict[str, Any], *, world: int, port: int,
                 timeout: float, env: dict[str, str] | None = None, show_rank0: bool = False) -> None:
        self.module, self.job, self.world, self.port = module, job, world, port
        self.timeout, self.env, self.show_rank0 = timeout, env or {}, show_rank0
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dir = Path(tempfile.mkdtemp(prefix="nnzoo-dp-"))

    def __enter__(self) -> Workers:
        (self.dir / "job.json").write_text(json.dumps(self.job))
        root = str(Path(__file__).resolve().parents[1])  # this nnzoo, in every worker
        base = {**os.environ, "MASTER_ADDR": HOST, "MASTER_PORT": str(self.port),
                "WORLD_SIZE": str(self.world), "LOCAL_WORLD_SIZE": str(self.world),
                "OMP_NUM_THREADS": "1", "NNZOO_PARENT_PID": str(os.getpid()),
                "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
                **self.env}
        self.started = time.monotonic()
        try:
            for rank in range(self.world):
                env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
                log = open(self.dir / f"rank{rank}.log", "wb")  # noqa: SIM115 (closed below)
                out = None if rank == 0 and self.show_rank0 else log
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", self.module, str(self.dir / "job.json"), str(self.dir)],
                    env=env, stdout=out, stderr=log, stdin=subprocess.DEVNULL,
                    start_new_session=True))
                log.close()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in self.procs)

    def wait(self) -> list[Path]:
        """Each rank's output file, once every worker has ended well; else stop them all and raise
        `DistributedError` naming the first that failed (or the time limit)."""
        while True:
            codes = [p.poll() for p in self.procs]
            failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                self.stop()
                raise self._failure(failed[0], codes[failed[0]])
            if all(c == 0 for c in codes):
                break
            if time.monotonic() - self.started > self.timeout:
                self.stop()
                raise DistributedError(f"the {self.world} workers did not finish within "
                                       f"{self.timeout:g} s; all stopped", pids=self.pids)
            time.sleep(0.05)
        outputs = [self.dir / f"rank{r}.npz" for r in range(self.world)]
        missing = [r for r, path in enumerate(outputs) if not path.exists()]
        if missing:
            raise DistributedError(f"worker rank {missing[0]} ended without writing its result",
                                   rank=missing[0], pids=self.pids)
        return outputs

    def _failure(self, rank: int, code: int | None) -> DistributedError:
        error = self.dir / f"rank{rank}.error"
        text = error.read_text() if error.exists() else ""
        log = (self.dir / f"rank{rank}.log")
        text = text or (log.read_text(errors="replace") if log.exists() else "")
        how = (f"was killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exited with status {code}")
        what = f"worker rank {rank} of {self.world} ({self.module}) {how}"
        if "address already in use" in text.lower() or "eaddrinuse" in text.lower():
            what += f": port {self.port} on {HOST} is in use; pass another port, or none"
        elif text:
            what += ":\n" + _tail(text)
        else:
            what += " before it could report anything"
        return DistributedError(what + "\n(every worker of the run has been stopped)",
                                rank=rank, pids=self.pids)

    def stop(self) -> None:
        """Kill every worker's session that is still running, and reap them all."""
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs:
            p.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        for path in self.dir.iterdir():
            path.unlink()
        self.dir.rmdir()
