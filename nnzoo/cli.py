"""The `nnzoo` command: list the zoo, show a model, check parity, convert weights.

Overrides are `field=value` words after the model name; values are read as JSON where they
parse (`num_classes=10`, `hidden_sizes=[64,32]`, `bidirectional=true`) and as text otherwise
(`norm=batch`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from nnzoo.errors import MemoryGuardError, NnzooError

if TYPE_CHECKING:
    from nnzoo.specs.base import Spec

#: The exit statuses, shown by `nnzoo --help` and in the README.
EXIT_STATUS = """\
exit status:
  0    success
  1    a check failed (parity, report): the output names the models
  2    bad usage or input: unknown model, field or backend, invalid value, unreadable file
  3    refused by the memory guard: the model or check would not fit in the memory available
       (the message gives both figures; NNZOO_MAX_MEMORY=64G or =off overrides)
  130  interrupted (Ctrl-C)
  141  standard output closed early (`nnzoo list | head`): stops quietly, as on SIGPIPE
Results go to standard output; errors, warnings and interruptions to standard error."""


def parse_overrides(words: Sequence[str]) -> dict[str, Any]:
    """`['num_classes=10', 'norm=batch']` -> `{'num_classes': 10, 'norm': 'batch'}`."""
    overrides: dict[str, Any] = {}
    for word in words:
        key, sep, text = word.partition("=")
        if not sep or not key:
            raise NnzooError(f"expected an override of the form field=value, got {word!r}")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides


# ---- commands ---------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from nnzoo.registry import entry, list_models
    from nnzoo.specs import FAMILIES

    names = list_models(args.pattern, family=args.family)
    width = max((len(n) for n in names), default=0)
    family_width = max(len(f) for f in FAMILIES)
    for name in names:
        e = entry(name)
        print(f"{name:<{width}}  {e.spec.family:<{family_width}} {e.description}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from nnzoo import backends
    from nnzoo.registry import resolve
    from nnzoo.runtime import count_params

    overrides = parse_overrides(args.overrides)
    spec = resolve(args.name, **overrides)
    info: dict[str, Any] = {"name": args.name, "spec": spec.to_dict(), "counts": {},
                            "backends": backends.available_backends(),
                            "keras_backend": backends.keras_backend()}
    for backend in backends.available_backends():
        c = count_params(backends.build_native(spec, backend, seed=0))
        info["counts"][backend] = {"trainable": c.trainable, "non_trainable": c.non_trainable,
                                   "total": c.total}
    if "torch" in info["backends"]:  # the FLOPs counter traces the PyTorch build (on `meta`)
        info["cost"] = _cost(spec)
        if overrides:  # a scaling of a registered model: what it does to parameters and FLOPs
            base = _cost(resolve(args.name))
            info["scaling"] = {"overrides": overrides, "base": base, "scaled": info["cost"],
                               "ratio": {k: info["cost"][k] / base[k] if base[k] else None
                                         for k in base}}
    print(json.dumps(info, indent=2))
    return 0


def _cost(spec: Spec) -> dict[str, int]:
    """Trainable parameters and FLOPs (one example at the spec's input size; multiply-add = 2)."""
    from nnzoo.costs import flops

    cost = flops(spec)
    return {"trainable": cost.trainable, "flops": cost.flops}


def cmd_parity(args: argparse.Namespace) -> int:
    from nnzoo import backends
    from nnzoo.parity import check_parity
    from nnzoo.registry import list_models

    if args.train:
        if args.keras_backend:
            backends.use_keras_backend(args.keras_backend)
        return _train_parity(args)
    if args.all:
        names = list_models()
    elif args.names:
        names = args.names
    else:
        raise NnzooError("name one or more models, or pass --all")
    overrides = parse_overrides(args.set)
    if args.keras_backends:
        return parity_matrix(args, names, _keras_backend_list(args.keras_backends))
    if args.keras_backend:
        backends.use_keras_backend(args.keras_backend)
    reports = []
    for name in names:
        report = check_parity(name, device=args.device, numeric=args.numeric,
                              layers=args.layers, **overrides)
        _stop_if_interrupted()  # before the row: a check a Ctrl-C broke is not a finding
        reports.append(report)
        if not args.json:
            _print_row(report, first=len(reports) == 1, numeric=args.numeric)
            if args.layers or (args.numeric and not report.ok):
                print(report)
    ok = all(r.ok for r in reports)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        print(f"\n{sum(r.ok for r in reports)}/{len(reports)} models OK"
              + ("" if ok else f"; FAILED: {', '.join(r.name for r in reports if not r.ok)}"))
    return 0 if ok else 1


def _train_parity(args: argparse.Namespace) -> int:
    """`parity NAME --train`: gradients both ways (float64 and float32), then both builds trained
    side by side; the per-step table, and the figure with --plot."""
    from nnzoo.training import gradient_parity, train_parity

    if len(args.names) != 1 or args.all:
        raise NnzooError("--train checks one model: name it (nnzoo parity NAME --train)")
    name, overrides = args.names[0], parse_overrides(args.set)
    grads = []
    for dtype in ("float64", "float32"):
        grads.append(gradient_parity(name, dtype=dtype, **overrides))
        print(grads[-1], flush=True)
    result = train_parity(name, steps=args.steps, optimizer=args.optimizer, **overrides)
    print(result)
    if args.plot:
        print(f"figure: {result.plot(args.plot)}")
    return 0 if result.ok and grads[0].ok else 1


def launch_command(backend: str, job: str) -> str:
    """How to start a written job on each of M machines with P workers (devices) each: the
    PyTorch worker under torchrun; the Keras worker as JAX processes joined through Keras's own
    KERAS_DISTRIBUTION_* variables (HOST:PORT is machine 0's)."""
    if backend == "torch":
        return ("run it on each machine with\n  torchrun --nnodes M --nproc-per-node P "
                "--rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id ID "
                f"-m nnzoo.torch_impl.distributed {job} OUTDIR")
    return ("run it on machine i (0..M-1) with\n  KERAS_BACKEND=jax "
            "KERAS_DISTRIBUTION_JOB_ADDRESSES=HOST:PORT KERAS_DISTRIBUTION_NUM_PROCESSES=M "
            f"KERAS_DISTRIBUTION_PROCESS_ID=i python -m nnzoo.keras_worker {job} OUTDIR\n"
            "(P: the machine's accelerators; on CPUs, XLA_FLAGS="
            "--xla_force_host_platform_device_count=P)")


def cmd_train(args: argparse.Namespace) -> int:
    """`train NAME --backend B --data-parallel N`: the framework's own data-parallel engine on
    this machine, progress from rank 0; see the README for several machines."""
    from nnzoo.distributed import train_data_parallel, training_job

    if args.write_job:  # the job for several machines (README: Data-parallel training)
        job = training_job(args.name, world=args.data_parallel, steps=args.steps, batch=args.batch,
                           optimizer=args.optimizer, seed=args.seed, dtype=args.dtype,
                           **parse_overrides(args.overrides))
        with open(args.write_job, "w", encoding="utf-8") as f:
            json.dump(job, f)
        print(f"wrote {args.write_job}: {launch_command(args.backend, args.write_job)}\n"
              f"(M x P = --data-parallel = {args.data_parallel})")
        return 0
    run = train_data_parallel(args.name, backend=args.backend, world=args.data_parallel,
                              steps=args.steps, batch=args.batch, optimizer=args.optimizer,
                              seed=args.seed, dtype=args.dtype, port=args.port,
                              **parse_overrides(args.overrides))
    print(f"done in {run.seconds:.1f} s: loss {run.losses[0]:.6f} -> {run.losses[-1]:.6f}")
    return 0


def _keras_backend_list(text: str) -> list[str]:
    from nnzoo.backends import KERAS_BACKENDS

    names = list(KERAS_BACKENDS) if text == "all" else [t for t in text.split(",") if t]
    unknown = [n for n in names if n not in KERAS_BACKENDS]
    if unknown or not names:
        raise NnzooError(f"unknown Keras backend {', '.join(unknown) or text!r}; choose from "
                         f"{', '.join(KERAS_BACKENDS)} or all")
    return names


def parity_matrix(args: argparse.Namespace, names: list[str], keras_backends: list[str]) -> int:
    """One verdict column per Keras backend: Keras picks its backend once per process, so each
    backend's check runs in a process of its own, one after the other (the largest models take
    gigabytes each); the table prints at the end."""
    import os
    import subprocess

    base = [sys.executable, "-m", "nnzoo", "parity", *names, "--json", "--device", args.device]
    base += ["--numeric"] if args.numeric else []
    base += ["--set", *args.set] if args.set else []
    results: dict[str, dict[str, Any]] = {}
    for kb in keras_backends:
        print(f"checking {len(names)} models on Keras {kb}...", file=sys.stderr, flush=True)
        env = {**os.environ, "KERAS_BACKEND": kb}
        done = subprocess.run([*base, "--keras-backend", kb], env=env, text=True,
                              capture_output=True)
        try:
            results[kb] = {r["name"]: r for r in json.loads(done.stdout)}
        except json.JSONDecodeError:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise NnzooError(f"the check on Keras {kb} failed to run: {last}") from None
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        head = f"{'model':<20} {'family':<11} {'trainable':>12} {'state':>9} {'output':<18}"
        head += "".join(f" {'keras/' + kb:>16}" for kb in keras_backends)
        print(head)
        print("-" * len(head))
        for name in names:
            first = results[keras_backends[0]][name]
            c = first["counts"].get("torch", {})
            line = (f"{name:<20} {first['family']:<11} {c.get('trainable', 0):>12,} "
                    f"{c.get('non_trainable', 0):>9,} {str(tuple(first['expected_shape'])):<18}")
            for kb in keras_backends:
                r = results[kb][name]
                f64 = [a["max_rel"] for a in r["agreement"] if a["dtype"] == "float64"]
                verdict = ("OK" if r["ok"] else "FAIL") + (f" {max(f64):.0e}" if f64 else "")
                line += f" {verdict:>16}"
            print(line, flush=True)
        for kb in keras_backends:
            for r in results[kb].values():
                if not r["ok"]:
                    print(f"keras/{kb} {r['name']}: {'; '.join(r['problems'])}")
    ok = all(r["ok"] for res in results.values() for r in res.values())
    total = len(names) * len(keras_backends)
    good = sum(r["ok"] for res in results.values() for r in res.values())
    print(f"\n{good}/{total} model x Keras-backend checks OK")
    return 0 if ok else 1


def cmd_convert(args: argparse.Namespace) -> int:
    """Load IN (either framework's format) into a `--to` build and save it in that framework's."""
    import nnzoo
    from nnzoo.conversion import save_weights

    model = nnzoo.build(args.name, args.to, weights=args.weights, **parse_overrides(args.overrides))
    out = save_weights(model, args.out)
    print(f"{args.name}: {args.weights} -> {out} ({args.to})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Build NAME (with --weights), export it as --format, and check the artifact against it."""
    import nnzoo
    from nnzoo.backends import keras_backend
    from nnzoo.exporting import formats
    from nnzoo.registry import resolve

    spec = resolve(args.name, **parse_overrides(args.overrides))
    writer = formats.writer_of(args.backend, keras_backend() if args.backend == "keras" else None)
    formats.check_format(args.format, writer, spec, args.out, f"{args.name} from {writer}")
    model = nnzoo.build(spec, args.backend, seed=0, weights=args.weights)
    from nnzoo.exporting import export

    result = export(model, args.format, args.out, check=not args.no_check, name=args.name)
    print(result)
    if result.checked:
        print(f"max |artifact - native| = {result.max_abs:.3e} over {len(result.checks)} inputs "
              f"(float32 parity bound: {'met' if result.ok else 'EXCEEDED'})")
    return 0 if result.ok else 1


def _bench_runner() -> Any:
    """`benchmarks.run` of a source checkout (the benchmarks are not part of the package)."""
    import importlib
    from pathlib import Path

    import nnzoo

    for root in (None, Path.cwd(), Path(nnzoo.__file__).resolve().parents[1]):
        if root is not None:
            if not (root / "benchmarks" / "run.py").is_file():
                continue
            sys.path.insert(0, str(root))
        try:
            return importlib.import_module("benchmarks.run")
        except ImportError:
            continue
    raise NnzooError("`nnzoo bench` runs the benchmarks of a source checkout, and benchmarks/ "
                     "is not part of the installed package: clone nnzoo and run `nnzoo bench` "
                     "(or `make bench`) from the checkout's root")


def cmd_bench(args: argparse.Namespace) -> int:
    """Delegate to `python -m benchmarks.run` (same options)."""
    return int(_bench_runner().main(args))


def cmd_explain(args: argparse.Namespace) -> int:
    from nnzoo.explain import explain

    print(explain(args.name, **parse_overrides(args.overrides)))
    return 0


def cmd_diagram(args: argparse.Namespace) -> int:
    from nnzoo.diagram import diagram

    result = diagram(args.name, args.format, **parse_overrides(args.overrides))
    out = args.out or (f"{args.name}.{args.format}" if isinstance(result, bytes) else None)
    if out is None:
        print(result, end="")
        return 0
    with open(out, "wb" if isinstance(result, bytes) else "w") as f:
        f.write(result)
    print(f"{args.name}: {args.format} diagram written to {out}")
    return 0


def cmd_flops(args: argparse.Namespace) -> int:
    from nnzoo.costs import flops

    print(flops(args.name, batch=args.batch, dtype=args.dtype, **parse_overrides(args.overrides)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from nnzoo.registry import list_models
    from nnzoo.report import write_report

    names = [n for p in args.patterns for n in list_models(p)] if args.patterns else None
    md, entries = write_report(args.out, names, quick=args.quick, max_params=args.max_params,
                               progress=lambda e: print(f"{e.name:<20} {e.verdict}", flush=True))
    print(f"\nreport: {md} (figure: {md.parent / 'zoo.png'})")
    return 1 if any(e.verdict.startswith("FAIL") for e in entries) else 0


def _print_row(report: Any, *, first: bool, numeric: bool) -> None:
    """One line per model, printed as soon as it is checked."""
    if first:
        head = f"{'model':<20} {'family':<11} {'trainable':>12} {'state':>9} {'output':<18}"
        head += f" {'t->k f64':>9} {'k->t f64':>9} {'worst f32':>9}" if numeric else ""
        print(head + "  verdict")
        print("-" * len(head + "  verdict"))
    c = report.counts.get("torch")
    trainable = f"{c.trainable:,}" if c else "-"
    state = f"{c.non_trainable:,}" if c else "-"
    shape = str(report.shapes.get("keras", report.shapes.get("torch", "-")))
    line = f"{report.name:<20} {report.spec.family:<11} {trainable:>12} {state:>9} {shape:<18}"
    if numeric:
        rel = {(a.direction, a.dtype): f"{a.max_rel:.1e}" for a in report.agreement}
        f32 = [a.max_rel for a in report.agreement if a.dtype == "float32"]
        line += (f" {rel.get(('torch->keras', 'float64'), '-'):>9}"
                 f" {rel.get(('keras->torch', 'float64'), '-'):>9}"
                 f" {(f'{max(f32):.1e}' if f32 else '-'):>9}")
    print(line + ("  OK" if report.ok else "  FAIL: " + "; ".join(report.problems)), flush=True)


# ---- entry point ------------------------------------------------------------------------------
def model_arguments(p: argparse.ArgumentParser) -> None:
    """NAME and its `field=value` overrides: every command about one model takes them."""
    p.add_argument("name")
    p.add_argument("overrides", nargs="*", metavar="field=value")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnzoo", description=__doc__.splitlines()[0],
                                     epilog=EXIT_STATUS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered models (shell wildcards: 'resnet*')")
    p.add_argument("pattern", nargs="?")
    p.add_argument("--family")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="a model's spec as JSON, its counts in each backend, its "
                       "parameters and FLOPs (with overrides: against the registered model's)")
    model_arguments(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("parity", help="check that both builds are the same network")
    p.add_argument("names", nargs="*")
    p.add_argument("--all", action="store_true", help="every registered model")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--numeric", action="store_true",
                   help="transfer weights both ways and compare outputs")
    p.add_argument("--layers", action="store_true",
                   help="with --numeric: compare every named layer's output")
    p.add_argument("--set", nargs="*", default=[], metavar="field=value",
                   help="overrides applied to every model checked")
    p.add_argument("--json", action="store_true")
    p.add_argument("--train", action="store_true", help="gradients both ways, then train both "
                   "builds from the same weights on the same batches (float64)")
    p.add_argument("--steps", type=int, default=20, help="with --train: updates (default 20)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd",
                   help="with --train: sgd (momentum 0.9, lr 0.01), adam (lr 1e-3) or adamw "
                   "(lr 1e-3, weight decay 0.01)")
    p.add_argument("--plot", metavar="FILE", help="with --train: the loss curves as a PNG")


    p.add_argument("--keras-backend", choices=("tensorflow", "jax", "torch"),
                   help="run the Keras builds on this Keras backend (default: KERAS_BACKEND, "
                   "else Keras's config, else tensorflow)")
    p.add_argument("--keras-backends", metavar="all|NAME,NAME",
                   help="one verdict column per Keras backend, each checked in its own process")
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("train", help="train a model data-parallel with the framework's own "
                       "engine (PyTorch DDP; Keras DataParallel on JAX, MirroredStrategy on TF)")
    model_arguments(p)
    p.add_argument("--backend", required=True, choices=("torch", "keras"))
    p.add_argument("--data-parallel", type=int, required=True, metavar="N",
                   help="workers: PyTorch processes, JAX host devices or TF logical CPUs (N >= 2)")
    p.add_argument("--steps", type=int, default=10, help="updates (default 10)")
    p.add_argument("--batch", type=int, default=8,
                   help="the global batch, split evenly over the workers (default 8)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=int, default=0, help="weights and synthetic batches")
    p.add_argument("--port", type=int, help="PyTorch's rendezvous port (default: a free one)")
    p.add_argument("--write-job", metavar="FILE", help="write the workers' job for several "
                   "machines (torchrun; on Keras, JAX processes) and print the command to start "
                   "it on each, instead of training here")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", help="load a weights file into one backend and save it there")
    model_arguments(p)
    p.add_argument("--weights", required=True,
                   help="a .pt/.pth/.bin state dict, a .safetensors file or a .weights.h5")
    p.add_argument("--to", required=True, choices=("torch", "keras"))
    p.add_argument("--out", required=True, help="OUT.pt for --to torch, OUT.weights.h5 for keras, "
                   "OUT.safetensors for either (canonical keys and layouts)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("export", help="write ONNX, pt2, SavedModel, LiteRT, safetensors or .keras, "
                       "and check it against the native build")
    model_arguments(p)
    p.add_argument("--backend", required=True, choices=("torch", "keras"),
                   help="the build to export (keras: the active Keras backend)")
    p.add_argument("--format", required=True,
                   choices=("onnx", "pt2", "saved-model", "litert", "safetensors", "keras"))
    p.add_argument("--out", required=True, help="the file (a directory for saved-model)")
    p.add_argument("--weights", help="load these weights first (.pt/.pth/.bin, .safetensors, "
                   ".weights.h5); default: a fresh build with seed 0")
    p.add_argument("--no-check", action="store_true",
                   help="skip reloading the artifact in its runtime and comparing outputs")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="speed and memory of both backends next to references "
                       "(from a source checkout; writes benchmarks/results/)")
    p.add_argument("names", nargs="*", help="models or wildcards (default: the standard set)")
    p.add_argument("--batch", default="1,16", help="comma-separated batch sizes (default 1,16)")
    p.add_argument("--quick", action="store_true", help="small models, no torch.compile: minutes")
    p.add_argument("--repeats", type=int, help="timed repeats per measurement (5; quick 3)")
    p.add_argument("--no-references", action="store_true", help="nnzoo's builds only")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("explain", help="both builds side by side, and the framework differences")
    model_arguments(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("diagram", help="data-flow diagram: blocks, skips, concatenations, shapes")
    model_arguments(p)
    p.add_argument("--format", choices=("mermaid", "dot", "svg", "png"), default="mermaid",
                   help="svg/png need Graphviz's `dot` program (system package manager)")
    p.add_argument("--out", help="file to write (default: stdout for text, NAME.FORMAT otherwise)")
    p.set_defaults(func=cmd_diagram)

    p = sub.add_parser("flops", help="FLOPs and memory per layer and in total")
    model_arguments(p)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="float32",
                   choices=("float32", "float16", "bfloat16", "float64"))
    p.set_defaults(func=cmd_flops)

    p = sub.add_parser("report", help="markdown report and figure of the whole zoo")
    p.add_argument("patterns", nargs="*", help="models to include (shell wildcards; default all)")
    p.add_argument("--out", required=True, help="directory for README.md and zoo.png")
    p.add_argument("--quick", action="store_true", help="no Keras builds (PyTorch counts only)")
    p.add_argument("--max-params", type=int, default=100_000_000,
                   help="build the Keras twin only up to this many parameters (default 1e8)")
    p.set_defaults(func=cmd_report)
    return parser


# ---- Ctrl-C ------------------------------------------------------------------------------------
#: Set by Ctrl-C. Python's KeyboardInterrupt alone can be lost: one raised inside a garbage
#: collection callback (JAX registers one) is printed as "Exception ignored" and dropped, and one
#: raised inside PyTorch came back as a RuntimeError, which `check_parity` reports as the model's
#: failure; either way `parity --all` went on through the zoo (measured: a 120 s timeout, 11 GB).
_INTERRUPTED = threading.Event()


def _on_ctrl_c(signum: int, frame: Any) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def _quiet_lost_interrupt(hook: Any, unraisable: Any) -> None:
    """A KeyboardInterrupt Python could not raise (in a gc callback) is left to the flag; the
    rest go to the hook that was in place (the caller's, or Python's)."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        hook(unraisable)


def _stop_if_interrupted() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came, whatever became of its own exception."""
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def _catching_ctrl_c() -> Iterator[None]:
    """Within the block Ctrl-C sets the flag as well as raising; an ignored SIGINT (a background
    job's) stays ignored, and off the main thread (a caller's) Python allows no handler. The
    handler and hook are restored after: `main` may be called from a program of the user's."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    _INTERRUPTED.clear()
    hook = sys.unraisablehook
    signal.signal(signal.SIGINT, _on_ctrl_c)
    sys.unraisablehook = functools.partial(_quiet_lost_interrupt, hook)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = hook


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (see EXIT_STATUS)."""
    # Library use drops only TensorFlow's retracing warning about Keras's grouped convolutions
    # (nnzoo.keras_impl.quiet); the command keeps TensorFlow's other warnings off the terminal too.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        with _catching_ctrl_c():
            return _run(argv)
    except KeyboardInterrupt:
        print("nnzoo: interrupted", file=sys.stderr)
        return 130


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = make_parser().parse_args(argv)
        if getattr(args, "layers", False):
            args.numeric = True
        status = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at exit
        return status
    except MemoryGuardError as exc:
        print(f"nnzoo: {exc}", file=sys.stderr)
        return 3
    except NnzooError as exc:
        print(f"nnzoo: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader has gone (`| head`): stop quietly, and point stdout at /dev/null so that
        # Python's own flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141


if __name__ == "__main__":
    sys.exit(main())
