"""The on-disk record of what `optimize` measured, so that tuning happens once per setting.

One JSON file, `$NNZOO_CACHE/optimize.json` (default `$XDG_CACHE_HOME/nnzoo/optimize.json`, i.e.
`~/.cache/nnzoo/optimize.json`), maps a key to the choice and the times measured. The key is a
hash of everything the fastest path depends on: the machine (CPU model, usable cores, the
framework's thread count), the framework versions (and the Keras backend), the model (its spec's
JSON, or for a model nnzoo did not build, its structure), its weights' dtype and device, the
input shapes and dtypes, and `optimize`'s own settings (compile, budget). The parts are stored
beside the choice, so the file says what each entry was measured for. A file that cannot be read
is ignored and rewritten; a directory that cannot be written is skipped with no error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FILE = "optimize.json"
FORMAT = 1  # bumped when the entries change meaning; older entries are then ignored


def cache_file() -> Path:
    root = os.environ.get("NNZOO_CACHE")
    if root:
        return Path(root).expanduser() / FILE
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nnzoo" / FILE


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_identity(model: Any, label: str) -> dict[str, Any]:
    """The model's spec hash (nnzoo builds) or a hash of its structure, with dtype and device."""
    spec = getattr(model, "spec", None)
    if spec is not None and hasattr(spec, "to_dict"):
        ident = {"spec": _digest(json.dumps(spec.to_dict(), sort_keys=True, default=str)),
                 "family": spec.family}
    elif label == "torch":
        shapes = [(n, tuple(p.shape)) for n, p in model.state_dict().items()]
        ident = {"structure": _digest(repr(model) + repr(shapes))}
    else:
        try:
            config = json.dumps(model.get_config(), sort_keys=True, default=str)
        except Exception:  # a subclassed model without a complete config
            config = type(model).__qualname__
        shapes = [(w.path, tuple(w.shape)) for w in model.weights]
        ident = {"structure": _digest(config + repr(shapes))}
    if label == "torch":
        first = next(iter(model.parameters()), None)
        ident["dtype"] = str(first.dtype) if first is not None else "none"
        ident["device"] = str(first.device.type) if first is not None else "cpu"
    else:
        ident["dtype"] = str(getattr(getattr(model, "dtype_policy", None), "name", "?"))
    return ident


def environment(label: str) -> dict[str, Any]:
    """Machine and framework versions (and thread counts, which change the fastest path)."""
    version = getattr(sys.modules.get("nnzoo"), "__version__", "?")  # the package, loaded
    env: dict[str, Any] = {"cpu": cpu_model(), "cores": cores(), "system": platform.system(),
                           "python": platform.python_version(), "nnzoo": version}
    backend = label.split("/", 1)[-1]
    if label.startswith("keras"):
        import keras

        env["keras"] = keras.__version__
    if backend == "torch":
        import torch

        env["torch"] = torch.__version__
        env["threads"] = torch.get_num_threads()
    elif backend == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
        env["threads"] = tf.config.threading.get_intra_op_parallelism_threads()
    elif backend == "jax":
        import jax

        env["jax"] = jax.__version__
        env["jax_device"] = jax.default_backend()
    return env


def key_of(parts: dict[str, Any]) -> str:
    return _digest(json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str))


def load(key: str) -> dict[str, Any] | None:
    entry = _read(cache_file()).get(key)
    return entry if isinstance(entry, dict) and "choice" in entry else None


def store(key: str, entry: dict[str, Any]) -> Path | None:
    """Add one entry (read, update, atomic replace, under a lock); None if it cannot be written."""
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            data = _read(path)
            data[key] = entry
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, path)
    except OSError as exc:
        print(f"nnzoo.optimize: cannot write the cache {path}: {exc}", file=sys.stderr)
        return None
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the file where the platform has one (POSIX), else none."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
