"""From the runner's results to the report: a markdown table and a plot (targets: `targets`).

`python -m benchmarks.report benchmarks/results/latest.json` re-renders a saved run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import paths
from benchmarks.targets import (
    KERAS_TF,
    T_MATMUL,
    TEXT,
    Row,
    flops_of,
    fmt_ms,
    label,
    matmul_rates,
    matmul_samples,
    pick,
    rows,
    targets,
)
from benchmarks.worker import PAIRED_BUDGET_S, PAIRED_MAX, PAIRED_REPEATS

MATMUL_OP = {"torch": "torch.mm", KERAS_TF: "tf.linalg.matmul", "keras/jax": "jax.numpy.matmul"}


# ---- text ------------------------------------------------------------------------------------
def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def markdown(results: dict[str, Any]) -> str:
    meta, start = results["meta"], results["startup"]
    rates = matmul_rates(results)
    flops = flops_of(results)
    rs = rows(results)
    bmax = max(meta["batches"])
    m = meta["machine"]
    lines = [
        f"# nnzoo benchmarks ({'quick' if meta['quick'] else 'full'} run, {meta['date']})", "",
        f"{m['cpu']}, {m['cores']} cores, {m['threads']} threads per framework; "
        f"load average {_load(meta.get('load_before'))} before, {_load(meta.get('load_after'))} "
        f"after; {meta['duration_s']:.0f} s in all. Medians of {meta['repeats']} repeats after "
        f"{meta['warmup']} warm-up calls; min-max in brackets. Ratios carry the claims; the "
        "absolute times depend on how busy the shared machine was.", "",
        "Matrix-multiply rate (fp32, 2048x2048, sustained; at the start / end of the run, the "
        "higher one used): " + ", ".join(
            f"{MATMUL_OP.get(k, k)} " + " / ".join(f"{x:.0f}" for x in v) + " GFLOP/s"
            for k, v in matmul_samples(results).items()) + ".", "",
        "What holds on another machine: the ratios between nnzoo and a reference on the same "
        "path (the same framework code runs both). What does not: which path is fastest, and "
        "so the Keras-vs-PyTorch and optimize-vs-fixed-recipe comparisons (they follow the "
        "CPU's vector units and the frameworks' kernels for it); `nnzoo.optimize` measures "
        "that on the machine it runs on.", "",
        f"Models ({meta.get('selection', 'named')}): {', '.join(meta['models'])}.", "",
        f"Start-up: `import nnzoo` {start.get('import_nnzoo_s', 0) * 1e3:.0f} ms and "
        f"`nnzoo list` {start.get('nnzoo_list_s', 0) * 1e3:.0f} ms wall, in fresh interpreters "
        f"(bare Python: {start.get('python_s', 0) * 1e3:.0f} ms); frameworks imported by "
        f"`import nnzoo`: {[k for k, v in start.get('frameworks_imported', {}).items() if v] or 'none'}.",
        "",
    ]
    if not meta.get("compiled"):
        lines += ["torch.compile: not measured as a path of its own in this run (20 s to minutes "
                  "per model on a small CPU; the full run measures it for resnet50 and one ViT). "
                  f"`optimize` still tries it where its {meta.get('optimize_budget_s', 30):g} s "
                  "budget fits the predicted compile time: its rows name the path it chose.",
                  ""]
    lines += ["## Targets", "", "| model | target | compared | value | verdict | note |",
              "|---|---|---|---:|---|---|"]
    footnotes: list[str] = []
    for v in targets(results):
        value = f"{v.value:.0%}" if v.target == T_MATMUL else f"{v.value:.2f}x"
        refs = []
        for why in v.why:
            if why not in footnotes:
                footnotes.append(why)
            refs.append(f"[{footnotes.index(why) + 1}]")
        note = " ".join([v.note, *refs]).strip()
        lines.append(f"| {v.model} | {TEXT[v.target].format(b=bmax)} | {v.what} | {value} | "
                     f"{v.mark} | {note} |")
    if footnotes:
        lines += ["", "Why targets are missed:", ""]
        lines += [f"{i}. {text}" for i, text in enumerate(footnotes, 1)]
    lines += ["", "## References", ""]
    for model, found in meta["references"].items():
        for impl, status in found.items():
            if status != "ok":
                lines.append(f"- {model}: {impl} not measured: {status}")
    for s in results["subjects"]:
        if s.get("error"):
            lines.append(f"- {s['model']} [{s['impl']}, {s['backend']}]: failed: {s['error']}")
    lines += [f"- {model}: no reference implementation for this family"
              for model, found in meta["references"].items() if not found]
    lines += ["", "## Inference", "",
              "Latency per call in ms; throughput in examples/s; GFLOP/s from the analytic count "
              "(multiply-add = 2) and as a share of the larger matmul rate; first: the first "
              "call (tracing, compiling), at the largest batch. optimize: `nnzoo.optimize(model, "
              "x)` tuned on that input (→ the path it chose; its tuning time is in the JSON), "
              f"timed in {PAIRED_REPEATS} rounds or more alternating with a second timing of "
              f"the fastest path (up to {PAIRED_MAX} rounds or {PAIRED_BUDGET_S:.0f} s while the "
              "median's 95% interval still holds the threshold); the Targets table compares "
              "the two by the median of the per-round ratios: under a changing load its "
              "absolute time can differ from the rows above.",
              ""]
    head = ["model", "impl", "backend", "path"]
    for b in meta["batches"]:
        head += [f"b{b} ms"]
    head += [f"b{bmax} /s", "GFLOP/s", "% mm", "first ms"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 4 + "---:|" * (len(head) - 4)]
    for (model, impl, backend), group in _groups(pick(rs, kind="infer")):
        f = flops.get((model, impl))
        known = paths.INFER.get(backend, ())
        order = [*known, *sorted({r.path for r in group} - set(known))]
        for path in [p for p in order if any(r.path == p for r in group)]:
            cells = [model, impl, backend, path]
            big = None
            for b in meta["batches"]:
                r = pick(group, path=path, batch=b)
                chose = f" → {r[0].extra['chose']}" if r and "chose" in r[0].extra else ""
                cells.append(f"{fmt_ms(r[0].median_s)} ({fmt_ms(r[0].min_s)}-{fmt_ms(r[0].max_s)})"
                             f"{chose}" if r else "-")
                big = r[0] if r and b == bmax else big
            rate = f * bmax / big.median_s / 1e9 if big and f else None
            cells += [f"{bmax / big.median_s:.1f}" if big else "-",
                      f"{rate:.0f}" if rate else "-",
                      f"{rate / max(rates.values()):.0%}" if rate and rates else "-",
                      fmt_ms(big.first_call_s) if big else "-"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += onnx_table(results)
    lines += ["", f"## Training step (batch {bmax}: forward, MSE loss, backward, SGD update)", "",
              "| model | impl | backend | path | ms | first ms |", "|---|---|---|---|---:|---:|"]
    for r in pick(rs, kind="train"):
        lines.append(f"| {r.model} | {r.impl} | {r.backend} | {r.path} | {fmt_ms(r.median_s)} "
                     f"({fmt_ms(r.min_s)}-{fmt_ms(r.max_s)}) | {fmt_ms(r.first_call_s)} |")
    lines += keras_backends_table(rs, meta["batches"])
    lines += memory_table(results, bmax)
    lines += ["", "## Build", "", "build: constructing and initializing the model, once its "
              "framework (`import`) and the library's model code (`load`) are imported.", "",
              "| model | impl | backend | build s | params | GFLOPs/example | import s | load s |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for s in results["subjects"]:
        st = s.get("setup", {})
        if s["impl"] == "matmul" or "build_s" not in st or s.get("onnx"):
            continue
        f = flops.get((s["model"], s["impl"]))
        lines.append(f"| {s['model']} | {s['impl']} | {label(s['backend'])} | {st['build_s']:.2f} | "
                     f"{st.get('params', 0):,} | {f'{f / 1e9:.2f}' if f else '-'} | "
                     f"{st.get('import_s', 0):.1f} | {st.get('load_s', 0):.2f} |")
    return "\n".join(lines) + "\n"


def keras_backends_table(rs: list[Row], batches: list[int]) -> list[str]:
    """Keras on each of its backends: the fastest path of each, and its ratio to Keras on
    TensorFlow and to native PyTorch (nnzoo's builds, this run)."""
    mine = pick(rs, impl="nnzoo")
    models = [m for m in dict.fromkeys(r.model for r in mine)
              if len({r.backend for r in pick(mine, model=m)} - {"torch"}) > 1]
    if not models:
        return []
    lines = ["", "## Keras on each backend", "",
             "nnzoo's builds; per cell the fastest path (optimize aside) in ms, then its ratio "
             "to the fastest Keras-on-TensorFlow path and to the fastest native PyTorch path "
             "(below 1: faster). Inference at each batch size; training: one step at the "
             "largest.", ""]
    cols = [(f"infer b{b}", "infer", b) for b in batches] + [
        (f"train b{max(batches)}", "train", max(batches))]
    lines += ["| model | framework | " + " | ".join(c[0] for c in cols) + " |",
              "|---|---|" + "---|" * len(cols)]
    for model in models:
        for backend in [b for b in paths.LABELS if pick(mine, model=model, backend=b)]:
            cells = []
            for _, kind, b in cols:
                best = _best(pick(mine, model=model, backend=backend, kind=kind, batch=b))
                if best is None:
                    cells.append("-")
                    continue
                ratios = []
                for ref in (KERAS_TF, "torch"):
                    other = _best(pick(mine, model=model, backend=ref, kind=kind, batch=b))
                    if other is not None and ref != backend:
                        ratios.append(f"{best.median_s / other.median_s:.2f}x "
                                      f"{'TF' if ref == KERAS_TF else 'PT'}")
                cells.append(f"{best.path} {fmt_ms(best.median_s)}"
                             + (f" ({', '.join(ratios)})" if ratios else ""))
            lines.append(f"| {model} | {backend} | " + " | ".join(cells) + " |")
    return lines


def _best(rs: list[Row]) -> Row | None:
    return min((r for r in rs if r.path != "optimize"), key=lambda r: r.median_s, default=None)


def onnx_table(results: dict[str, Any]) -> list[str]:
    """onnxruntime on nnzoo's exported PyTorch build, against the fastest native path (either
    backend, nnzoo's builds) measured in the same run at the same batch."""
    found = [(s, r) for s in results["subjects"] for r in s["rows"] if r.get("kind") == "onnx"]
    if not found:
        return []
    native = pick(rows(results), impl="nnzoo", kind="infer")
    lines = ["", "## ONNX Runtime", "",
             "nnzoo's PyTorch build exported with `nnzoo.export(model, \"onnx\", ...)` (the dynamo "
             "exporter) and run in an onnxruntime CPU session with the same thread count; ratio: "
             "onnxruntime / the fastest native path of this run (< 1: onnxruntime is faster).", "",
             "| model | batch | onnxruntime ms | fastest native ms (path) | ratio | .onnx MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for s, r in found:
        if "error" in r:
            lines.append(f"| {s['model']} | {r['batch']} | failed: {r['error']} ||||")
            continue
        best = min(pick(native, model=s["model"], batch=r["batch"]), key=lambda x: x.median_s,
                   default=None)
        where = f"{fmt_ms(best.median_s)} ({best.backend} {best.path})" if best else "-"
        ratio = f"{r['median_s'] / best.median_s:.2f}" if best else "-"
        size = f"{r['artifact_bytes'] / 1e6:.2f}" if r.get("artifact_bytes") else "-"
        lines.append(f"| {s['model']} | {r['batch']} | {fmt_ms(r['median_s'])} "
                     f"({fmt_ms(r['min_s'])}-{fmt_ms(r['max_s'])}) | {where} | {ratio} | {size} |")
    return lines


def memory_table(results: dict[str, Any], bmax: int) -> list[str]:
    """Peak memory, each implementation alone in a fresh process (see `benchmarks.worker`)."""
    mem = results.get("memory", [])
    if not mem:
        return []
    lines = ["", "## Peak memory", "",
             "Extra resident memory (MiB) over what the process held before each step, measured "
             "with each implementation alone in a fresh process: the build (weights), the first "
             f"two inference calls at batch {bmax} (activations, workspace) and the first training "
             "step (activations kept for backward, gradients, optimizer state). Linux's VmHWM "
             "high-water mark, reset before each step.", "",
             "| model | impl | backend | build | inference | training step |",
             "|---|---|---|---:|---:|---:|"]
    for s in mem:
        if s.get("error") and not s["rows"]:
            lines.append(f"| {s['model']} | {s['impl']} | {s['backend']} | failed: {s['error']} |||")
            continue
        cells = {r["kind"]: f"{_mib(r.get('peak_mib'))} ({r['path']})" if "error" not in r
                 else "failed" for r in s["rows"]}
        lines.append(f"| {s['model']} | {s['impl']} | {label(s['backend'])} | "
                     f"{_mib(s['setup'].get('build_peak_mib'))} | {cells.get('infer', '-')} | "
                     f"{cells.get('train', '-')} |")
    return lines


def _groups(rs: list[Row]) -> list[tuple[tuple[str, str, str], list[Row]]]:
    keys: list[tuple[str, str, str]] = []
    for r in rs:
        if (r.model, r.impl, r.backend) not in keys:
            keys.append((r.model, r.impl, r.backend))
    return [(k, [r for r in rs if (r.model, r.impl, r.backend) == k]) for k in keys]


def _load(load: Any) -> str:
    return "?" if not load else f"{load[0]:.1f}"


def targets_text(results: dict[str, Any]) -> str:
    vs = targets(results)
    missed = [v for v in vs if not v.ok]
    lines = [f"targets: {len(vs) - len(missed)} met, {len(missed)} missed"]
    lines += [f"  missed: {v.model}: {v.target} {v.what}: {v.value:.2f}" for v in missed]
    return "\n".join(lines)


# ---- plot ------------------------------------------------------------------------------------
def plot(results: dict[str, Any], path: Path) -> bool:
    """Latency at the largest batch, per model, implementation, backend and path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    bmax = max(results["meta"]["batches"])
    groups = [(k, g) for k, g in _groups(pick(rows(results), kind="infer", batch=bmax))]
    models = list(dict.fromkeys(k[0] for k, _ in groups))
    if not models:
        return False
    sizes = [sum(len(g) for k, g in groups if k[0] == m) for m in models]
    fig, axes = plt.subplots(len(models), 1, figsize=(8, 0.9 + 0.24 * sum(sizes) + 0.5 * len(models)),
                             gridspec_kw={"height_ratios": sizes}, squeeze=False)
    colors = {"torch": "#ee4c2c", KERAS_TF: "#2b7bba", "keras/jax": "#6a3d9a",
              "keras/torch": "#f0a030"}
    for ax, model in zip(axes[:, 0], models):
        bars = [r for k, g in groups if k[0] == model for r in g]
        ms = [r.median_s * 1e3 for r in bars]
        limit = 3 * min(ms)  # the paths worth comparing; slower ones are cut and labelled
        ax.barh(range(len(bars)), [min(v, limit) for v in ms],
                color=[colors.get(r.backend, "#999999") for r in bars], edgecolor="black",
                linewidth=[1.5 if r.impl == "nnzoo" else 0 for r in bars])
        for i, (r, v) in enumerate(zip(bars, ms)):
            lo, hi = r.min_s * 1e3, r.max_s * 1e3
            if v <= limit:
                ax.plot([lo, min(hi, limit)], [i, i], color="black", linewidth=0.8)
            ax.text(min(v, limit) * 1.01, i, f"{v:,.1f}" + (" >>" if v > limit else ""),
                    va="center", fontsize=6)
        ax.set_xlim(0, limit * 1.15)
        ax.set_yticks(range(len(bars)), [f"{r.impl} {r.backend} {r.path}" for r in bars],
                      fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{model}: batch {bmax} inference latency, ms (median; line: min-max; "
                     "outlined: nnzoo; >>: cut at 3x the fastest)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(results: dict[str, Any], out: Path, tag: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{tag}.json", out / f"{tag}.md"]
    written[0].write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    if plot(results, out / f"{tag}.png"):
        written.append(out / f"{tag}.png")
        text = text.replace("\n## Targets", f"\n![latency]({tag}.png)\n\n## Targets", 1)
    else:
        text += "\nNo plot: matplotlib is not installed (`pip install -e '.[bench]'`).\n"
    written[1].write_text(text)
    return written


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        data = json.loads(Path(arg).read_text())
        p = Path(arg)
        print(*write(data, p.parent, p.stem), sep="\n")
