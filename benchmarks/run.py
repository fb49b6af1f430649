"""The benchmark runner: `python -m benchmarks.run [NAMES] [--batch 1,16] [--quick]`.

Measures every chosen model in PyTorch and in Keras (on TensorFlow, and for a few models on JAX
and on PyTorch too), on every execution path (see `benchmarks.paths`) and through
`nnzoo.optimize`, next to its reference implementations, plus the machine's matrix-multiply
rate and nnzoo's own start-up time; writes `benchmarks/results/<tag>.json`, `<tag>.md` and
`<tag>.png` (tag: `latest`, or `quick` with --quick). Each model x framework runs in a fresh
subprocess (`benchmarks.worker`): Keras picks its backend once per process.

--quick: a small model set, fewer repeats, no torch.compile (20 s to minutes of compiling per
model): a few minutes. The full run measures the default set (everything but the heaviest
variants) and compiles resnet50 and one ViT. `nnzoo.optimize` tunes afresh in every run (an
empty cache per run), so its row shows what a first call on this machine chooses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: Variants left out of a full run unless named: minutes per step on a 2-core CPU, or gigabytes.
HEAVY = ("resnet101", "resnet152", "resnext101_*", "wide_resnet*", "vit_b_32", "vit_l_*",
         "vit_h_*", "convnext_small", "convnext_base", "efficientnet_b[1-7]")
QUICK = ("mlp_small", "cnn_small", "lstm", "resnet18", "vit_ti_16")
#: torch.compile is measured (full run only) for the first of these that exist: resnet50, a ViT.
COMPILE = (("resnet50",), ("vit_s_16", "vit_b_16", "vit_ti_16"))
#: Models measured on all three Keras backends by default (the others on TensorFlow only):
#: the full run's, and the quick run's.
ALL_KERAS = {"full": ("resnet50", "vit_s_16"), "quick": ("cnn_small", "vit_ti_16")}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__.splitlines()[0])
    add_arguments(p)
    return p.parse_args(argv)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options; shared with `nnzoo bench`."""
    p.add_argument("names", nargs="*", help="models or wildcards (default: the standard set)")
    p.add_argument("--batch", default="1,16", help="comma-separated batch sizes (default 1,16)")
    p.add_argument("--quick", action="store_true",
                   help="small models, 3 repeats, no torch.compile: a few minutes")
    p.add_argument("--repeats", type=int, help="timed repeats per measurement (5; quick 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    p.add_argument("--threads", type=int, default=cores(), help="threads per framework")
    p.add_argument("--compile", nargs="*", metavar="NAME",
                   help="models to measure under torch.compile (default: resnet50 and one ViT; "
                        "none with --quick)")
    p.add_argument("--keras-backends", metavar="LIST",
                   help="Keras backends for every model: comma-separated from tensorflow, jax, "
                        "torch, or 'all' (default: tensorflow, plus jax and torch for "
                        f"{' and '.join(ALL_KERAS['full'])}; with --quick for "
                        f"{' and '.join(ALL_KERAS['quick'])})")
    p.add_argument("--onnx", nargs="*", metavar="NAME",
                   help="models whose PyTorch build is also exported to ONNX and timed in "
                        "onnxruntime (default: resnet50 and vit_s_16 where chosen; none with "
                        "--quick)")
    p.add_argument("--optimize-budget", type=float, default=30.0, metavar="S",
                   help="nnzoo.optimize's tuning budget per model, framework and batch "
                        "(default 30 s, optimize's own default)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory jobs (a fresh process per implementation)")
    p.add_argument("--no-references", action="store_true", help="nnzoo's builds only")
    p.add_argument("--no-train", action="store_true", help="skip the training steps")
    p.add_argument("--tag", help="output file stem (default: latest, or quick with --quick)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder")


def choose_models(args: argparse.Namespace) -> list[str]:
    import fnmatch

    import nnzoo

    known = nnzoo.list_models()
    if args.names:
        chosen = []
        for pattern in args.names:
            if any(c in pattern for c in "*?["):
                hits = nnzoo.list_models(pattern)
            else:
                nnzoo.get_spec(pattern)  # an unknown name fails here, with the closest names
                hits = [pattern]
            chosen += [h for h in hits if h not in chosen]
        return chosen
    if args.quick:
        return [n for n in QUICK if n in known]
    return [n for n in known if not any(fnmatch.fnmatchcase(n, h) for h in HEAVY)]


def compile_set(args: argparse.Namespace, models: list[str]) -> set[str]:
    if args.compile is not None:
        return set(args.compile)
    if args.quick:
        return set()
    return {next(n for n in group if n in models) for group in COMPILE
            if any(n in models for n in group)}


def keras_backends(args: argparse.Namespace, name: str) -> list[str]:
    """The Keras backends model `name` is measured on."""
    chosen = getattr(args, "keras_backends", None)
    if chosen:
        names = ["tensorflow", "jax", "torch"] if chosen == "all" else chosen.split(",")
        for b in names:
            if b not in ("tensorflow", "jax", "torch"):
                raise SystemExit(f"--keras-backends: unknown Keras backend {b!r}; choose from "
                                 "tensorflow, jax, torch, or all")
        return names
    extra = name in ALL_KERAS["quick" if args.quick else "full"]
    return ["tensorflow", "jax", "torch"] if extra else ["tensorflow"]


def missing_packages(label: str) -> str:
    """'' if the label's framework is installed, else what is missing."""
    import importlib.util

    from nnzoo.backends import KERAS_BACKENDS

    needs = ("torch",) if label == "torch" else ("keras", *KERAS_BACKENDS[label.split("/")[1]][0])
    missing = [p for p in needs if importlib.util.find_spec(p) is None]
    return f"not installed: {', '.join(missing)}" if missing else ""


def plan(args: argparse.Namespace, models: list[str]) -> tuple[list[dict[str, Any]], dict]:
    """The jobs (one subprocess per model and framework) and the status of every reference."""
    import nnzoo
    from benchmarks import paths, subjects

    batches = [int(b) for b in str(args.batch).split(",") if b]
    repeats = args.repeats or (3 if args.quick else 5)
    common = {"warmup": args.warmup, "repeats": repeats, "threads": args.threads,
              "min_repeat_s": 0.05 if args.quick else 0.2}
    compiled = compile_set(args, models)
    refs: dict[str, dict[str, str]] = {}
    labels_of = {name: [lb for lb in ["torch"] + [f"keras/{b}" for b in keras_backends(args, name)]
                        if not missing_packages(lb)] for name in models}
    used = [lb for lb in paths.LABELS if any(lb in v for v in labels_of.values())]
    # the matmul rate is taken at the start and at the end: the report uses the higher of the
    # two (Keras on PyTorch multiplies with torch.mm, measured as "torch")
    probe = [{**common, "backend": lb, "impls": ["matmul"], "model": "matmul", "measure": [{}]}
             for lb in used if lb != "keras/torch"]
    jobs = list(probe)
    for name in models:
        image = nnzoo.get_spec(name).input_kind == "image"
        refs[name] = {} if args.no_references else subjects.references(name)
        for label in labels_of[name]:
            framework = paths.framework(label)
            impls = ["nnzoo"] + [i for i, ok in refs[name].items() if ok == "ok"
                                 and subjects.backend_of_impl(i) == framework
                                 and (framework == "torch" or label == "keras/tensorflow")]
            measure = [{"kind": "infer", "path": p, "batch": b} for b in batches
                       for p in paths.INFER[label]
                       if (not p.startswith("channels_last") or image)
                       and (p not in paths.COMPILE_ONLY or name in compiled)]
            if not args.no_train:
                measure += [{"kind": "train", "path": p, "batch": max(batches)}
                            for p in paths.TRAIN[label] if p != "channels_last" or image]
            jobs.append({**common, "backend": label, "impls": impls, "model": name,
                         "measure": measure, "optimize_compile": True if name in compiled
                         else None, "optimize_budget": args.optimize_budget})
            if args.no_memory:
                continue
            # peak memory, each implementation alone (references only in the full run)
            fast = paths.FAST[label] if image or label != "torch" else "inference_mode"
            memory = [{"kind": "infer", "path": fast, "batch": max(batches)}]
            if not args.no_train:
                memory.append({"kind": "train", "path": paths.TRAIN[label][0],
                               "batch": max(batches)})
            for impl in impls if not args.quick else impls[:1]:
                jobs.append({**common, "warmup": 1, "backend": label, "impls": [impl],
                             "model": name, "measure": memory, "memory": True})
        if name in onnx_set(args) and "torch" in labels_of[name]:  # a job of its own: the export
            jobs.append({**common, "backend": "torch", "impls": ["nnzoo"], "model": name,
                         "onnx": True,
                         "measure": [{"kind": "onnx", "path": p, "batch": b,
                                      "threads": args.threads}
                                     for b in batches for p in paths.ONNX]})
    return jobs + probe, refs


def onnx_set(args: argparse.Namespace) -> set[str]:
    from benchmarks import paths

    if args.onnx is not None:
        return set(args.onnx)
    return set() if args.quick else set(paths.ONNX_MODELS)


def worker_env(label: str = "torch", cache: str | None = None) -> dict[str, str]:
    """The workers' environment: quiet TensorFlow, and OpenMP threads that sleep when they wait.

    OMP_WAIT_POLICY=PASSIVE (unless set already): on a machine whose cores are partly taken by
    others, PyTorch's OpenMP threads spin at every barrier waiting for a peer that is not
    running, measured here as 2x slower for ResNet-18 and 300x for a tiny MLP at 2 threads;
    passive waiting is as fast as one thread there, and costs nothing measurable on big ops.
    """
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_BACKEND": label.split("/", 1)[1] if "/" in label else "tensorflow"}
    if cache:  # nnzoo.optimize's choices: tuned afresh in every run, shared within it
        env["NNZOO_CACHE"] = cache
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # torch.compile's time is reported cold: no on-disk graph cache from an earlier compile of
    # the same graph (nnzoo's ResNet and torchvision's compile to the same one).
    env.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
    env.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")
    return env


def run_job(job: dict[str, Any], on_row: Any, cache: str | None = None) -> list[dict[str, Any]]:
    """Run one job in a subprocess: one result per implementation; `on_row` per measurement."""
    from benchmarks.worker import MARK

    results = {impl: {"impl": impl, "model": job["model"], "backend": job["backend"],
                      "rows": [], "setup": {}, "memory": bool(job.get("memory")),
                      "onnx": bool(job.get("onnx"))}
               for impl in job["impls"]}
    shared: dict[str, Any] = {}
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.worker", json.dumps(job)],
                                stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT,
                                env=worker_env(job["backend"], cache))
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith(MARK):
                continue
            event = json.loads(line[len(MARK):])
            kind = event.pop("event")
            if kind == "setup":
                shared = event
                for r in results.values():
                    r["setup"].update(shared)
            elif kind == "built":
                results[event.pop("impl")]["setup"].update(event)
            elif kind == "fatal":
                results[event["impl"]]["error"] = event["error"]
            else:
                results[event.pop("impl")]["rows"].append(event)
                on_row(event)
        proc.wait()
        err.seek(0)
        tail = err.read()[-2000:]
    missing = expected_rows(job) - sum(len(r["rows"]) for r in results.values())
    for r in results.values():
        if proc.returncode != 0 and "error" not in r and len(r["rows"]) < len(job["measure"]):
            r["error"] = f"worker exited with {proc.returncode}: {tail.strip()[-500:]}"
    for _ in range(missing):
        on_row(None)
    return list(results.values())


def expected_rows(job: dict[str, Any]) -> int:
    """Rows a job reports: one per measurement and implementation (`optimize`: nnzoo's only)."""
    return sum(1 if m.get("path") == "optimize" else len(job["impls"]) for m in job["measure"])


def startup_times(repeats: int = 5) -> dict[str, Any]:
    """Wall time of `import nnzoo` and `nnzoo list` in fresh interpreters (item: stays fast)."""
    def wall(code: list[str]) -> float:
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, *code], check=True, capture_output=True, cwd=ROOT)
            samples.append(time.perf_counter() - start)
        return sorted(samples)[len(samples) // 2]

    probe = ("import json, sys, nnzoo; print(json.dumps({m: m in sys.modules for m in "
             "('torch', 'tensorflow', 'keras')}))")
    imported = json.loads(subprocess.run([sys.executable, "-c", probe], check=True, text=True,
                                         capture_output=True, cwd=ROOT).stdout)
    return {"python_s": wall(["-c", "pass"]), "import_nnzoo_s": wall(["-c", "import nnzoo"]),
            "nnzoo_list_s": wall(["-m", "nnzoo.cli", "list"]), "frameworks_imported": imported}


def machine(args: argparse.Namespace) -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": cores(), "threads": args.threads, "python": platform.python_version(),
            "platform": platform.platform()}


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from benchmarks import paths, report

    if isinstance(argv, argparse.Namespace):  # from `nnzoo bench`: its options over our defaults
        args = parse_args([])
        vars(args).update({k: v for k, v in vars(argv).items() if k in vars(args)})
    else:
        args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    models = choose_models(args)
    jobs, refs = plan(args, models)
    started = time.time()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    results: dict[str, Any] = {
        "meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": bool(args.quick),
                 "models": models, "optimize_budget_s": args.optimize_budget,
                 "selection": "named" if args.names else "quick set" if args.quick else
                 "default set",
                 "batches": [int(b) for b in str(args.batch).split(",") if b],
                 "repeats": jobs[0]["repeats"], "warmup": args.warmup,
                 "compiled": sorted(compile_set(args, models)), "machine": machine(args),
                 "references": refs, "load_before": load_before,
                 "omp_wait_policy": worker_env()["OMP_WAIT_POLICY"],
                 "frameworks": {m: sorted({j["backend"] for j in jobs if j["model"] == m},
                                          key=paths.LABELS.index) for m in models},
                 "not_installed": {lb: why for lb in paths.LABELS
                                   if (why := missing_packages(lb))}},
        "startup": {}, "subjects": [], "memory": [],
    }
    total = sum(expected_rows(j) for j in jobs) + 1
    cache = tempfile.mkdtemp(prefix="nnzoo-bench-cache-")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("start-up times", total=total)
        results["startup"] = startup_times()
        progress.advance(task)
        for job in jobs:
            label = f"{job['model']} ({job['backend']}: {', '.join(job['impls'])})"
            label += " memory" if job.get("memory") else ""
            progress.update(task, description=label)

            def on_row(row: Any, label: str = label) -> None:
                progress.advance(task)
                if row:
                    what = f"{row.get('kind')} {row.get('path')} b{row.get('batch')}"
                    progress.update(task, description=f"{label} {what}")

            for result in run_job(job, on_row, cache):
                if result["memory"]:
                    results["memory"].append(result)
                else:
                    results["subjects"].append(result)
            if not progress.console.is_terminal:  # a log, not a live bar: one line per job
                progress.console.print(f"done: {label}")
    shutil.rmtree(cache, ignore_errors=True)
    results["meta"]["load_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    results["meta"]["duration_s"] = round(time.time() - started, 1)
    tag = args.tag or ("quick" if args.quick else "latest")
    written = report.write(results, args.out, tag)
    for path in written:
        print(f"wrote {path}")
    print(report.targets_text(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
