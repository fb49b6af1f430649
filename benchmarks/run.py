"""The benchmark runner: `python -m benchmarks.run [NAMES] [--batch 1,16] [--quick]`.

Measures every chosen model in both backends, on every execution path (see `benchmarks.paths`),
next to its reference implementations, plus the machine's matrix-multiply rate and nnzoo's own
start-up time; writes `benchmarks/results/<tag>.json`, `<tag>.md` and `<tag>.png` (tag:
`latest`, or `quick` with --quick). Each model x implementation x backend runs in a fresh
subprocess (`benchmarks.worker`).

--quick: a small model set, fewer repeats, no torch.compile (20-40 s of compiling per model):
a few minutes. The full run measures the default set (everything but the heaviest variants) and
compiles resnet50 and one ViT.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
         "vit_h_*")
QUICK = ("mlp_small", "cnn_small", "lstm", "resnet18", "vit_ti_16")
#: torch.compile is measured (full run only) for the first of these that exist: resnet50, a ViT.
COMPILE = (("resnet50",), ("vit_b_16", "vit_s_16", "vit_ti_16"))


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
    p.add_argument("--onnx", nargs="*", metavar="NAME",
                   help="models whose PyTorch build is also exported to ONNX and timed in "
                        "onnxruntime (default: resnet50 and vit_s_16 where chosen; none with "
                        "--quick)")
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


def plan(args: argparse.Namespace, models: list[str]) -> tuple[list[dict[str, Any]], dict]:
    """The jobs (one subprocess per model and backend) and the status of every reference."""
    import nnzoo
    from benchmarks import paths, subjects

    batches = [int(b) for b in str(args.batch).split(",") if b]
    repeats = args.repeats or (3 if args.quick else 5)
    common = {"warmup": args.warmup, "repeats": repeats, "threads": args.threads,
              "min_repeat_s": 0.05 if args.quick else 0.2}
    backends = nnzoo.available_backends()
    # the matmul rate is taken at the start and at the end: the report uses the higher of the two
    probe = [{**common, "backend": b, "impls": ["matmul"], "model": "matmul", "measure": [{}]}
             for b in backends]
    jobs = list(probe)
    compiled = compile_set(args, models)
    refs: dict[str, dict[str, str]] = {}
    for name in models:
        image = nnzoo.get_spec(name).input_kind == "image"
        refs[name] = {} if args.no_references else subjects.references(name)
        for backend in backends:
            impls = ["nnzoo"] + [i for i, ok in refs[name].items()
                                 if ok == "ok" and subjects.backend_of_impl(i) == backend]
            measure = [{"kind": "infer", "path": p, "batch": b} for b in batches
                       for p in paths.INFER[backend]
                       if (p != "channels_last" or image) and (p != "compile" or name in compiled)]
            if not args.no_train:
                measure += [{"kind": "train", "path": p, "batch": max(batches)}
                            for p in paths.TRAIN[backend] if p != "channels_last" or image]
            jobs.append({**common, "backend": backend, "impls": impls, "model": name,
                         "measure": measure})
            # peak memory, each implementation alone (references only in the full run)
            memory = [{"kind": "infer", "path": paths.FAST[backend] if image else "eager",
                       "batch": max(batches)}]
            if not args.no_train:
                memory.append({"kind": "train", "path": paths.TRAIN[backend][0],
                               "batch": max(batches)})
            for impl in impls if not args.quick else impls[:1]:
                jobs.append({**common, "warmup": 1, "backend": backend, "impls": [impl],
                             "model": name, "measure": memory, "memory": True})
        if name in onnx_set(args) and "torch" in backends:  # a job of its own: the export
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


def worker_env() -> dict[str, str]:
    """The workers' environment: quiet TensorFlow, and OpenMP threads that sleep when they wait.

    OMP_WAIT_POLICY=PASSIVE (unless set already): on a machine whose cores are partly taken by
    others, PyTorch's OpenMP threads spin at every barrier waiting for a peer that is not
    running, measured here as 2x slower for ResNet-18 and 300x for a tiny MLP at 2 threads;
    passive waiting is as fast as one thread there, and costs nothing measurable on big ops.
    """
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_BACKEND": "tensorflow"}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # torch.compile's time is reported cold: no on-disk graph cache from an earlier compile of
    # the same graph (nnzoo's ResNet and torchvision's compile to the same one).
    env.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
    env.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")
    return env


def run_job(job: dict[str, Any], on_row: Any) -> list[dict[str, Any]]:
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
                                env=worker_env())
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
    expected = len(job["measure"]) * len(job["impls"])
    missing = expected - sum(len(r["rows"]) for r in results.values())
    for r in results.values():
        if proc.returncode != 0 and "error" not in r and len(r["rows"]) < len(job["measure"]):
            r["error"] = f"worker exited with {proc.returncode}: {tail.strip()[-500:]}"
    for _ in range(missing):
        on_row(None)
    return list(results.values())


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

    from benchmarks import report

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
                 "models": models,
                 "selection": "named" if args.names else "quick set" if args.quick else
                 "default set",
                 "batches": [int(b) for b in str(args.batch).split(",") if b],
                 "repeats": jobs[0]["repeats"], "warmup": args.warmup,
                 "compiled": sorted(compile_set(args, models)), "machine": machine(args),
                 "references": refs, "load_before": load_before,
                 "omp_wait_policy": worker_env()["OMP_WAIT_POLICY"]},
        "startup": {}, "subjects": [], "memory": [],
    }
    total = sum(len(j["measure"]) * len(j["impls"]) for j in jobs) + 1
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

            for result in run_job(job, on_row):
                if result["memory"]:
                    results["memory"].append(result)
                else:
                    results["subjects"].append(result)
            if not progress.console.is_terminal:  # a log, not a live bar: one line per job
                progress.console.print(f"done: {label}")
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
