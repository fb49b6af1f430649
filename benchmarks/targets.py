"""The targets of the benchmark issue, evaluated on one run's results, with what explains a miss.

Claims are ratios taken within one run (these machines are shared and noisy); absolute times are
context. A ratio whose two min-max ranges overlap is marked "(overlap)": within this run's noise.
A missed target gets notes: what the run's own numbers say (are the references any faster? is
the reference a different network?) and known causes found by measuring (`WHY`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: The targets of the benchmark issues, as (id, text, threshold).
T_REF, T_REF_FAST, T_BACKENDS, T_TRAIN, T_MATMUL = "ref", "ref-fast", "backends", "train", "matmul"
T_OPTIMIZE = "optimize"
THRESHOLDS = {T_REF: 1.05, T_REF_FAST: 1.05, T_BACKENDS: 1.15, T_TRAIN: 1.10, T_MATMUL: 0.75,
              T_OPTIMIZE: 1.05}
KERAS_TF = "keras/tensorflow"
TEXT = {
    T_OPTIMIZE: "optimize / the fastest path measured in this run, same framework and batch: "
                "<= 1.05",
    T_REF: "nnzoo / reference, same path, batch {b}: <= 1.05",
    T_REF_FAST: "nnzoo fastest / reference fastest, batch {b}: <= 1.05",
    T_BACKENDS: "fastest Keras vs fastest PyTorch, batch {b}: within 1.15x",
    T_TRAIN: "Keras / PyTorch training step (each fastest), batch {b}: <= 1.10",
    T_MATMUL: "fastest path GFLOP/s / larger matmul rate, batch {b}: >= 0.75",
}
MATMUL_FAMILIES = ("resnet", "vit")

#: Calls shorter than this measure the frameworks' per-call dispatch more than the model.
OVERHEAD_S = 0.005

#: Known causes of missed targets, found by measuring: (targets, model wildcard, words that the
#: "compared" cell contains, why). Shown only next to a target that is missed.
WHY: list[tuple[tuple[str, ...], str, str, str]] = [
    ((T_REF, T_REF_FAST), "resnet*", "torch", "nnzoo's PyTorch ResNet has torchvision's layers "
     "(in-place ReLU and residual addition, as torchvision and timm): a remaining gap is the "
     "machine's noise or the reference's layout; see the measured figures in results/."),
    ((T_REF, T_REF_FAST), "vit*", "timm", "timm computes attention as one fused qkv projection "
     "and `F.scaled_dot_product_attention`; nnzoo keeps torchvision's `nn.MultiheadAttention` "
     "layout (so torchvision checkpoints load) and runs at torchvision's speed."),
    ((T_BACKENDS,), "resnet*", "torch", "PyTorch's CPU convolutions are slower than "
     "TensorFlow's on this machine, whoever builds the network. Measured on resnet50, batch 16, "
     "nnzoo.optimize on both sides: one thread, PyTorch channels-last 1422 ms (92 GFLOP/s), "
     "Keras tf.function 968 ms (135 GFLOP/s); two threads 1477 and 1005 ms (this machine's "
     "second vCPU adds no arithmetic)."),
    ((T_BACKENDS, T_TRAIN), "*lstm*", "torch", "Keras 3 on TensorFlow runs LSTM and GRU on a "
     "CPU as a step-by-step loop (its fused kernel is cuDNN's, GPU only); PyTorch calls one fused "
     "kernel per layer."),
    ((T_BACKENDS, T_TRAIN), "gru*", "torch", "Keras 3 on TensorFlow runs LSTM and GRU on a "
     "CPU as a step-by-step loop (its fused kernel is cuDNN's, GPU only); PyTorch calls one fused "
     "kernel per layer."),
]


@dataclass
class Row:
    model: str
    impl: str
    backend: str
    kind: str
    path: str
    batch: int
    median_s: float
    min_s: float
    max_s: float
    first_call_s: float | None
    extra: dict[str, Any] = field(default_factory=dict)  # optimize's choice, tuning, versus


def label(backend: str) -> str:
    """A framework label; runs before Keras's other backends joined called TensorFlow "keras"."""
    return KERAS_TF if backend == "keras" else backend


def rows(results: dict[str, Any]) -> list[Row]:
    out = []
    for s in results["subjects"]:
        for r in s["rows"]:
            if "error" in r or r.get("kind") == "matmul" or "median_s" not in r:
                continue
            extra = {k: r[k] for k in ("chose", "tuning_s", "tuned", "versus") if k in r}
            out.append(Row(s["model"], s["impl"], label(s["backend"]), r["kind"], r["path"],
                           r["batch"], r["median_s"], r["min_s"], r["max_s"],
                           r.get("first_call_s"), extra))
    return out


def matmul_samples(results: dict[str, Any]) -> dict[str, list[float]]:
    """backend -> GFLOP/s of each matmul probe (one at the start of the run, one at the end)."""
    found: dict[str, list[float]] = {}
    for s in results["subjects"]:
        if s["impl"] == "matmul":
            found.setdefault(label(s["backend"]), []).extend(
                r["gflops_per_s"] for r in s["rows"] if "gflops_per_s" in r)
    return found


def matmul_rates(results: dict[str, Any]) -> dict[str, float]:
    """backend -> its best probe: a busy neighbour can only lower a rate, never raise it."""
    return {b: max(v) for b, v in matmul_samples(results).items() if v}


def flops_of(results: dict[str, Any]) -> dict[tuple[str, str], int]:
    """(model, impl) -> FLOPs per example, for every implementation measured.

    A subject that counted its own network (keras.applications' ResNet v1) keeps its count;
    the others implement nnzoo's network and share nnzoo's count (see `benchmarks.flops`).
    """
    own = {(s["model"], s["impl"]): s["setup"]["flops_per_example"]
           for s in results["subjects"] if s.get("setup", {}).get("flops_per_example")}
    return {(s["model"], s["impl"]): own.get((s["model"], s["impl"]), own.get((s["model"], "nnzoo")))
            for s in results["subjects"] if s["impl"] != "matmul"
            and own.get((s["model"], s["impl"]), own.get((s["model"], "nnzoo")))}


def pick(rs: Iterable[Row], **where: Any) -> list[Row]:
    return [r for r in rs if all(getattr(r, k) == v for k, v in where.items())]


def _fastest(rs: list[Row]) -> Row | None:
    """The fastest of the paths (`optimize` aside: it is one of them, chosen by timing)."""
    return min((r for r in rs if r.path != "optimize"), key=lambda r: r.median_s, default=None)


def _overlap(a: Row, b: Row) -> bool:
    return a.min_s <= b.max_s and b.min_s <= a.max_s


@dataclass
class Verdict:
    target: str
    model: str
    what: str
    value: float
    ok: bool
    note: str = ""
    seconds: float = 0.0  # the faster of the two compared medians
    why: list[str] = field(default_factory=list)  # known causes, for a missed target
    ref: str = ""  # the reference compared against (ref, ref-fast)
    backend: str = ""  # the slower backend (backends, train), or the reference's

    @property
    def mark(self) -> str:
        return "met" if self.ok else "**missed**"


def targets(results: dict[str, Any]) -> list[Verdict]:
    """Every target of the issue, evaluated on this run's medians."""
    rs = rows(results)
    b = max(results["meta"]["batches"])
    rates = matmul_rates(results)
    flops = flops_of(results)
    measured = {s["model"] for s in results["subjects"]}
    out: list[Verdict] = []
    for model in [m for m in results["meta"]["models"] if m in measured]:
        mine = pick(rs, model=model, impl="nnzoo", batch=b)
        # nnzoo vs each reference, path by path, and fastest vs fastest
        for impl in sorted({r.impl for r in pick(rs, model=model, batch=b)} - {"nnzoo"}):
            theirs = pick(rs, model=model, impl=impl, batch=b)
            for t in theirs:
                m = pick(mine, backend=t.backend, kind=t.kind, path=t.path)
                if m:
                    ratio = m[0].median_s / t.median_s
                    out.append(Verdict(T_REF, model, f"{t.kind} {t.backend} {t.path} vs {impl}",
                                       ratio, ratio <= THRESHOLDS[T_REF],
                                       "(overlap)" if _overlap(m[0], t) else "",
                                       ref=impl, backend=t.backend))
            backend = theirs[0].backend if theirs else None
            fm = _fastest(pick(mine, backend=backend, kind="infer"))
            ft = _fastest(pick(theirs, kind="infer"))
            if fm and ft:
                ratio = fm.median_s / ft.median_s
                out.append(Verdict(T_REF_FAST, model, f"{backend} {fm.path} vs {impl} {ft.path}",
                                   ratio, ratio <= THRESHOLDS[T_REF_FAST],
                                   "(overlap)" if _overlap(fm, ft) else "",
                                   ref=impl, backend=str(backend)))
        ft, fk = (_fastest(pick(mine, backend=x, kind="infer")) for x in ("torch", KERAS_TF))
        if ft and fk:
            ratio = max(fk.median_s, ft.median_s) / min(fk.median_s, ft.median_s)
            faster = KERAS_TF if fk.median_s < ft.median_s else "torch"
            out.append(Verdict(T_BACKENDS, model, f"{KERAS_TF} {fk.path} vs torch {ft.path}",
                               ratio, ratio <= THRESHOLDS[T_BACKENDS], f"{faster} faster",
                               min(fk.median_s, ft.median_s),
                               backend="torch" if faster == KERAS_TF else KERAS_TF))
        tt, tk = (_fastest(pick(mine, backend=x, kind="train")) for x in ("torch", KERAS_TF))
        if tt and tk:
            ratio = tk.median_s / tt.median_s
            out.append(Verdict(T_TRAIN, model, f"{KERAS_TF} {tk.path} vs torch {tt.path}",
                               ratio, ratio <= THRESHOLDS[T_TRAIN],
                               "(overlap)" if _overlap(tk, tt) else "",
                               min(tk.median_s, tt.median_s), backend=KERAS_TF))
        out += optimize_verdicts(model, pick(rs, model=model, impl="nnzoo", kind="infer"),
                                 results["meta"]["batches"])
        family = _family(model)
        if family in MATMUL_FAMILIES and rates and (model, "nnzoo") in flops:
            best = _fastest(pick(mine, kind="infer"))
            if best:
                rate = flops[(model, "nnzoo")] * b / best.median_s / 1e9
                frac = rate / max(rates.values())
                out.append(Verdict(T_MATMUL, model, f"{best.backend} {best.path}: "
                                   f"{rate:.0f} GFLOP/s", frac, frac >= THRESHOLDS[T_MATMUL]))
    compiled = set(results["meta"].get("compiled", []))
    for v in (v for v in out if not v.ok):
        if v.target in (T_BACKENDS, T_TRAIN) and v.seconds < OVERHEAD_S:
            v.why.append(f"Calls under {OVERHEAD_S * 1e3:.0f} ms: the frameworks' per-call "
                         "dispatch (Python, op launch), not arithmetic, sets the pace.")
        if v.target == T_BACKENDS and v.note == f"{KERAS_TF} faster" and v.model not in compiled:
            v.why.append("torch.compile, PyTorch's fastest path, was not measured for this "
                         "model in this run.")
        v.why += evidence(v, rs, flops, b)
        v.why += [why for targets_, pattern, words, why in WHY if v.target in targets_
                  and fnmatch.fnmatchcase(v.model, pattern) and words in v.what]
    return out


def optimize_verdicts(model: str, mine: list[Row], batches: list[int]) -> list[Verdict]:
    """optimize against the fastest path of the same framework and batch, for every one.

    The ratio is the median of the per-round ratios to the second timing of that path
    interleaved with optimize's (`versus`, see `benchmarks.worker`) when there is one
    ("paired", with the ratios' range, the number of rounds and the median's 95% interval;
    results written before the pairing: the ratio of the two medians, "interleaved"), else the
    ratio of medians against its own measurement ("apart"); the times shown are the two
    medians. "(overlap)": the interval (or the range) holds 1, equal within this run's noise.
    """
    out = []
    for backend in dict.fromkeys(r.backend for r in mine):
        for b in batches:
            opt = pick(mine, backend=backend, batch=b, path="optimize")
            best = _fastest(pick(mine, backend=backend, batch=b))
            if not opt or not best:
                continue
            o = opt[0]
            versus = o.extra.get("versus")
            if versus and versus["path"] == best.path and "paired" in versus:
                theirs, ratio = versus["median_s"], versus["paired"]
                low, high = versus.get("paired_ci") or (versus["paired_min"], versus["paired_max"])
                overlap = low <= 1.0 <= high
                how = f"paired {versus['paired_min']:.2f}-{versus['paired_max']:.2f}x"
                if "paired_ci" in versus:  # results written since the interval was added
                    how += f" over {versus['rounds']} rounds, median's 95% {low:.2f}-{high:.2f}x"
            elif versus and versus["path"] == best.path:  # results from before the pairing
                theirs, how = versus["median_s"], "interleaved"
                overlap = o.min_s <= versus["max_s"] and versus["min_s"] <= o.max_s
                ratio = o.median_s / theirs
            else:
                theirs, overlap, how = best.median_s, _overlap(o, best), "apart"
                ratio = o.median_s / theirs
            chose = o.extra.get("chose", "?")
            v = Verdict(T_OPTIMIZE, model, f"{backend} b{b}: optimize ({chose}) "
                        f"{fmt_ms(o.median_s)} ms vs {best.path} {fmt_ms(theirs)} ms",
                        ratio, ratio <= THRESHOLDS[T_OPTIMIZE],
                        " ".join(x for x in ("(overlap)" if overlap else "", how) if x),
                        min(o.median_s, best.median_s), backend=backend)
            if not v.ok:
                v.why += _optimize_why(o, best, chose)
            out.append(v)
    return out


def _optimize_why(o: Row, best: Row, chose: str) -> list[str]:
    """Why optimize missed: the fastest path untried, or its own timing ranked them otherwise."""
    tuned = {t["path"]: t for t in o.extra.get("tuned", [])}
    theirs = tuned.get(best.path)
    if theirs is None or theirs.get("median_s") is None:
        why = theirs.get("note") or theirs.get("status") if theirs else "not one of its paths"
        return [f"optimize did not time {best.path} ({o.backend}, {o.model}, batch {o.batch}): "
                f"{why}."]
    mine = tuned.get(chose, {}).get("median_s")
    if best.median_s < OVERHEAD_S:
        return [f"Calls under {OVERHEAD_S * 1e3:.0f} ms: the frameworks' per-call dispatch "
                "(Python, op launch), not arithmetic, sets the pace."]
    return [f"optimize's own timing ({o.backend}, {o.model}, batch {o.batch}, "
            f"{o.extra.get('tuning_s', 0):.0f} s of tuning) put {chose} at "
            f"{fmt_ms(mine)} ms and {best.path} at {fmt_ms(theirs['median_s'])} ms: the "
            "machine's load changed between its tuning and this run's measurement."]


def evidence(v: Verdict, rs: list[Row], flops: dict[tuple[str, str], int], b: int) -> list[str]:
    """What this run's own numbers say about a missed target (the references, above all)."""
    notes = []
    fl = lambda impl: flops.get((v.model, impl))  # noqa: E731
    if v.target in (T_REF, T_REF_FAST) and fl(v.ref) and fl("nnzoo") and fl(v.ref) != fl("nnzoo"):
        v.note = f"{v.note} per FLOP: {v.value * fl(v.ref) / fl('nnzoo'):.2f}x".strip()
        notes.append(f"{v.ref}'s {v.model} is a different network: {fl(v.ref) / 1e9:.2f} "
                     f"GFLOPs per example against nnzoo's {fl('nnzoo') / 1e9:.2f} (keras."
                     "applications' ResNets are v1); the note gives the ratio per FLOP.")
    if v.target == T_MATMUL:
        refs = _best_per_impl(pick(rs, model=v.model, batch=b, kind="infer"))
        rates = {i: fl(i) * b / r.median_s / 1e9 for i, r in refs.items() if fl(i) and i != "nnzoo"}
        if rates:
            notes.append("The references on their fastest paths: " + ", ".join(
                f"{i} {refs[i].backend} {refs[i].path} {rate:.0f} GFLOP/s"
                for i, rate in sorted(rates.items(), key=lambda kv: -kv[1])) + ".")
    elif v.target in (T_BACKENDS, T_TRAIN) and v.seconds >= OVERHEAD_S:
        kind = "train" if v.target == T_TRAIN else "infer"
        best = _best_per_impl(pick(rs, model=v.model, batch=b, kind=kind, backend=v.backend))
        mine = best.pop("nnzoo", None)
        if mine and best and all(mine.median_s <= 1.05 * r.median_s for r in best.values()):
            what = "training step" if kind == "train" else "fastest inference path"
            notes.append(f"The {v.backend} references are no faster ({what}: nnzoo "
                         f"{fmt_ms(mine.median_s)} ms; " + ", ".join(
                             f"{i} {fmt_ms(r.median_s)} ms" for i, r in best.items())
                         + "): the gap lies between the frameworks, not in nnzoo's builds.")
    return notes


def _best_per_impl(rs: list[Row]) -> dict[str, Row]:
    """impl -> its fastest row among `rs`."""
    best: dict[str, Row] = {}
    for r in sorted(rs, key=lambda r: r.median_s):
        best.setdefault(r.impl, r)
    return best


def _family(model: str) -> str | None:
    try:
        import nnzoo

        return nnzoo.get_spec(model).family
    except Exception:
        return None


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.2f}" if seconds < 1e-3 else f"{seconds * 1e3:.1f}" if seconds < 10 \
        else f"{seconds:.0f}s"

