"""The `nnzoo` command as a Unix tool: quiet on a closed pipe, 130 on Ctrl-C, the memory guard's
exit status, diagnostics on stderr, and exit statuses documented where users look."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from nnzoo.cli import EXIT_STATUS, make_parser

ROOT = Path(__file__).resolve().parents[1]
NNZOO = [sys.executable, "-m", "nnzoo.cli"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def test_a_closed_pipe_ends_quietly() -> None:
    # The reader is gone before the first line is written: every write fails with EPIPE.
    proc = subprocess.Popen([*NNZOO, "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, env=_env())
    proc.stdout.close()  # type: ignore[union-attr]
    err = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert proc.wait(timeout=60) == 141
    assert err == ""
    # and as a user types it (head may or may not exit before nnzoo has written everything)
    shell = subprocess.run(["bash", "-c", f"{' '.join(NNZOO)} list | head -n 1; "
                            "echo status=${PIPESTATUS[0]} >&2"],
                           capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=60)
    assert shell.stdout.count("\n") == 1
    assert re.fullmatch(r"status=(0|141)\n", shell.stderr), shell.stderr


def test_ctrl_c_exits_130_with_one_line() -> None:
    # As from a terminal: a shell that started this test run in the background (`cmd &`) hands
    # its children SIGINT ignored, and Python then leaves it ignored -- Ctrl-C would do nothing.
    proc = subprocess.Popen([*NNZOO, "parity", "--all"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for _ in range(3):  # header, rule, the first model's row: it is busy checking the next
            assert proc.stdout.readline()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err == "nnzoo: interrupted\n"


#: A Ctrl-C that Python loses: the first check's interrupt lands in a garbage-collection callback,
#: where Python prints and drops exceptions (as it did in JAX's, measured), so the check returns.
LOST_INTERRUPT = """
import gc, os, signal, sys
import nnzoo.parity
from nnzoo.cli import main

real, calls = nnzoo.parity.check_parity, []

def check(name, **kw):
    calls.append(name)
    if len(calls) == 1:
        def callback(phase, info):
            if phase == "start" and callback in gc.callbacks:
                gc.callbacks.remove(callback)
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10**6):  # the handler runs here, inside the callback
                    pass
        gc.callbacks.append(callback)
        gc.collect()
    return real(name, **kw)

nnzoo.parity.check_parity = check
status = main(["parity", "mlp_small", "mlp_small"])
sys.exit(status)
"""


def test_ctrl_c_that_python_loses_still_stops_after_the_model() -> None:
    """The handler also sets a flag that `nnzoo parity` reads after each model: it stops there,
    with the same one line and status, not going on through the rest of the names."""
    proc = subprocess.run([sys.executable, "-c", LOST_INTERRUPT], capture_output=True, text=True,
                          cwd=ROOT, env=_env(), timeout=300,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert proc.stderr == "nnzoo: interrupted\n", proc.stderr[-2000:]
    assert proc.stdout == ""  # the interrupted check's row is not printed


def test_parity_all_under_a_memory_limit_fails_with_the_guards_error() -> None:
    """NNZOO_MAX_MEMORY=1M: a parity check of any model over ~170k parameters does not fit (the
    check is refused before anything is built, so no framework starts but PyTorch, to count)."""
    proc = subprocess.run([*NNZOO, "parity", "--all"], capture_output=True, text=True, cwd=ROOT,
                          env=_env(NNZOO_MAX_MEMORY="1M"), timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]
    (line,) = proc.stderr.splitlines()
    assert line.startswith("nnzoo: memory guard: a parity check of ")
    assert re.search(r"needs (about|more than) [\d.]+ MiB .* but 1 MiB is available \(NNZOO_MAX_MEMORY\)",
                     line)
    assert "max_memory=" in line and "Traceback" not in proc.stderr


def test_exit_statuses_are_documented_in_help_and_readme() -> None:
    codes = re.findall(r"^  (\d+) ", EXIT_STATUS, re.MULTILINE)
    assert codes == ["0", "1", "2", "3", "130", "141"]
    assert EXIT_STATUS in make_parser().format_help()
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Exit status", 1)[1].split("\n#", 1)[0]
    assert re.findall(r"^\| `(\d+)` \|", section, re.MULTILINE) == codes


def test_the_address_space_limit_is_part_of_the_budget() -> None:
    """`ulimit -v`: the guard counts the headroom under RLIMIT_AS (no framework needed)."""
    code = (
        "import re, resource\n"
        "from nnzoo import guard\n"
        "vm = int(re.search(r'VmSize:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm * 1024 + 300 * 2**20, resource.RLIM_INFINITY))\n"
        "b = guard.available()\n"
        "print(round(b.bytes / 2**20), b.source)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    mib, source = proc.stdout.split(maxsplit=1)
    assert 250 <= int(mib) <= 300 and source.strip() == "the address-space limit (ulimit -v)"
