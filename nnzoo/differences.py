"""THE registry of PyTorch/Keras differences that change a network, each measured by nnzoo.

Every entry says what each framework does, why it matters, which spec field (or nnzoo layer)
settles it, which models it touches (`applies`, a predicate over a traced PyTorch build), and
carries a probe: a small pair of real PyTorch and Keras layers run on the same seeded data.
`measure()` is the error had the choice been left to the frameworks' defaults (or, where the
defaults agree, to the common mistake); `residual()` is what remains with nnzoo's explicit
setting (<= 1e-5). Results are cached per process.

    python -m nnzoo.differences --write docs/framework-differences.md   # regenerate the doc
    python -m nnzoo.differences --check docs/framework-differences.md   # exit 1 if stale

The probes live in `nnzoo/probes.py`, one small function per entry.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Context:
    """What a predicate may look at: the spec, and a traced PyTorch build (modules, shapes)."""

    spec: Any
    modules: dict[str, Any]
    inputs: dict[str, list[tuple[int, ...]]]

    @classmethod
    def of(cls, trace: Any) -> Context:
        inputs: dict[str, list[tuple[int, ...]]] = {}
        for c in trace.calls:
            inputs.setdefault(c.path, c.inputs)
        return cls(trace.spec, dict(trace.model.named_modules()), inputs)

    def find(self, *kinds: str, where: Callable[[Any], bool] = lambda m: True) -> list[str]:
        """Paths of modules of these class names that satisfy `where`."""
        return [path for path, m in self.modules.items()
                if type(m).__name__ in kinds and where(m)]

    def has(self, *kinds: str, where: Callable[[Any], bool] = lambda m: True) -> bool:
        return bool(self.find(*kinds, where=where))


def _nonzero(value: Any) -> bool:
    values = value if isinstance(value, tuple) else (value,)
    return any(v != 0 for v in values) if not isinstance(value, str) else value != "valid"


def _strided(m: Any) -> bool:
    stride = m.stride if isinstance(m.stride, tuple) else (m.stride,)
    return any(s > 1 for s in stride) and _nonzero(m.padding)


def _flattens_image(ctx: Context) -> bool:
    """A Flatten that receives a feature map larger than 1x1 (its order then matters)."""
    return any(len(s) == 4 and s[2] * s[3] > 1
               for path in ctx.find("Flatten") for s in ctx.inputs.get(path, [])[:1])


def _column_steps(ctx: Context) -> bool:
    """Columns read as steps from a map taller than one row and wider than one channel."""
    spec = ctx.spec
    return (getattr(spec, "sequence", None) == "columns" and spec.feature_size()[0] > 1
            and spec.stages[-1].channels > 1)


def _lstm_biases(ctx: Context) -> int:
    """The parameters a stock Keras LSTM stack would lack: 4 x hidden per layer and direction."""
    mods = [ctx.modules[p] for p in ctx.find("LSTM")]
    return sum(4 * m.hidden_size * m.num_layers * (2 if m.bidirectional else 1) for m in mods)


BN = ("BatchNorm1d", "BatchNorm2d")
WEIGHTED = ("Linear", "Conv1d", "Conv2d", "ConvTranspose2d", "LSTM", "GRU", "MultiheadAttention")


@dataclass(frozen=True)
class Difference:
    id: str
    title: str
    pytorch: str
    keras: str
    explanation: str
    settled_by: str  # how nnzoo settles it
    fields: tuple[str, ...]  # the spec fields that settle it, where a spec has them
    applies: Callable[[Context], bool]
    probe: Callable[[bool], float]  # probe(settled) -> effect size
    metric: str  # what `measure()` measures, in words
    unit: str = ""  # "" for a difference of values; "parameters" for counts
    defaults_agree: bool = False  # then measure() is the effect of the common mistake
    in_model: Callable[[Context], str] | None = None  # the effect's size in a given model

    def measure(self) -> float:
        """The effect had the choice been left to defaults (seeded, so it is deterministic)."""
        return _measured(self.id, False)

    def residual(self) -> float:
        """The same probe with nnzoo's explicit settings (<= 1e-5)."""
        return _measured(self.id, True)

    def effect_text(self, value: float | None = None) -> str:
        v = self.measure() if value is None else value
        return f"{sig2(v):,}" if self.unit else f"{sig2(v):g}"


def sig2(x: float) -> float | int:
    """Round to 2 significant digits (integers of a count stay integers)."""
    if x == 0:
        return 0
    if float(x).is_integer() and abs(x) >= 1:
        return int(x) if abs(x) < 100 else int(float(f"{x:.2g}"))
    return float(f"{x:.2g}")


from nnzoo.probes import (  # noqa: E402  (next to the entries they prove)
    probe_adam_epsilon,
    probe_adamw_decay,
    probe_attention_layout,
    probe_avgpool_padding,
    probe_bn_eps,
    probe_bn_momentum,
    probe_bn_variance,
    probe_ce_logits,
    probe_column_order,
    probe_conv_padding,
    probe_data_layout,
    probe_data_parallel_bn,
    probe_default_init,
    probe_flatten_order,
    probe_gelu,
    probe_grad_clipping,
    probe_gru_gate_order,
    probe_gru_reset_after,
    probe_hard_sigmoid,
    probe_kernel_layout,
    probe_ln_eps,
    probe_lstm_biases,
    probe_mse_sum,
    probe_pool_padding,
    probe_sgd_momentum_schedule,
    probe_sgd_weight_decay,
    probe_stochastic_depth,
    probe_upsample_bilinear,
)


def _training(ctx: Context) -> bool:
    """Optimizer and loss differences concern how a model is trained, not the model: they are in
    the document and in `nnzoo.training`, not in a model's `explain`."""
    return False


#: What the training probes measure (nnzoo/probes.py `_train_pair`).
TRAIN = ("after 20 float64 steps of an 8-16-4 MLP from the same weights on the same batches, "
         "max |weight difference| / max |weight change|")

REGISTRY: tuple[Difference, ...] = (
    Difference(
        "bn_eps", "Batch-norm epsilon", "eps=1e-5", "epsilon=1e-3",
        "Epsilon is added to the variance before the square root. Channels whose running variance "
        "is small (common in trained networks) are scaled very differently.",
        "Keras receives epsilon=bn_eps", ("bn_eps",), lambda c: c.has(*BN), probe_bn_eps,
        "max |output difference| in inference, 8 channels with running variances 1e-4..1"),
    Difference(
        "bn_momentum", "Batch-norm momentum", "momentum=0.1: the weight of the NEW batch",
        "momentum=0.99: the weight of the OLD value",
        "The two conventions are opposite: PyTorch's m is Keras's 1 - m. Passing 0.1 as it is "
        "makes Keras forget its statistics almost at once; leaving Keras's 0.99 makes it 10x slower.",
        "specs hold bn_momentum in PyTorch's convention; Keras receives 1 - bn_momentum",
        ("bn_momentum",), lambda c: c.has(*BN), probe_bn_momentum,
        "max |running statistics difference| after one training step"),
    Difference(
        "bn_variance", "Batch-norm running variance: unbiased or biased",
        "updates running_var with the unbiased batch variance (x n/(n-1))",
        "updates moving_variance with the biased batch variance",
        "Both normalise a training batch with the biased variance, but the running statistic "
        "they keep for inference differs by n/(n-1): a factor 2 for a batch of two vectors.",
        "nnzoo's Keras BatchNorm layer (keras_impl/layers.py) updates with the unbiased variance",
        (), lambda c: c.has(*BN), probe_bn_variance,
        "max |running variance difference| after one step on a batch of 2 vectors"),
    Difference(
        "conv_padding", "Stride-2 convolution padding", "padding=1: one pixel on every side",
        "padding='same': asymmetric, the extra pixel at the bottom/right",
        "With stride > 1, 'same' pads only what the stride needs, bottom/right first; the output "
        "has the right shape but every value is shifted by one pixel.",
        "explicit symmetric ZeroPadding2D + 'valid' convolution (keras_impl/layers.py conv2d)",
        ("padding", "stages"), lambda c: c.has("Conv2d", where=_strided), probe_conv_padding,
        "max |output difference|, 3x3 stride-2 convolution on a 32x32 input"),
    Difference(
        "pool_padding", "Max-pool 3x3 / stride 2 / padding 1", "pads symmetrically with -inf",
        "padding='same': asymmetric",
        "The same shift as for convolutions, in ResNet's stem max-pool.",
        "explicit symmetric -inf padding + 'valid' pooling (keras_impl/layers.py pool2d)",
        ("stages",), lambda c: c.has("MaxPool2d", where=_strided), probe_pool_padding,
        "max |output difference| on a 32x32 input"),
    Difference(
        "avgpool_padding", "Average-pool padding", "counts padded zeros (count_include_pad=True)",
        "padding='same': asymmetric, and padded cells are not counted",
        "Border outputs are averages over different cells and different divisors.",
        "explicit symmetric zero padding + 'valid' pooling (keras_impl/layers.py pool2d)",
        ("stages",), lambda c: c.has("AvgPool2d", where=_strided), probe_avgpool_padding,
        "max |output difference|, 3x3 / stride 2 / padding 1 on a 32x32 input"),
    Difference(
        "lstm_biases", "LSTM biases", "two per gate: b_ih and b_hh (8 x hidden per layer and "
        "direction)", "one per gate (4 x hidden)",
        "Only their sum enters the maths, but parameter counts differ by 4 x hidden per layer and "
        "direction, and a PyTorch checkpoint has nowhere to go.",
        "nnzoo's Keras LSTM cell holds both biases and hands Keras their sum",
        (), lambda c: c.has("LSTM"), probe_lstm_biases,
        "parameter count difference of one layer, hidden 16", unit="parameters",
        in_model=lambda c: f"{_lstm_biases(c):,} parameters (4 x hidden per layer and direction)"),
    Difference(
        "gru_reset_after", "GRU reset gate: before or after the recurrent product",
        "n = tanh(W x + b_in + r * (U h + b_hn))", "reset_after=True (Keras 3 default) is the "
        "same; reset_after=False (Keras 2 / TF1 ports) applies r before U",
        "With reset_after=False the candidate state is a different function (and there is one "
        "bias instead of two).", "nnzoo's Keras GRU always uses reset_after=True",
        (), lambda c: c.has("GRU"), probe_gru_reset_after,
        "max |output difference| over 6 steps with reset_after=False", defaults_agree=True),
    Difference(
        "gru_gate_order", "GRU gate order", "r, z, n (reset, update, new)",
        "z, r, h (update, reset, candidate)",
        "Copying the stacked gate matrices without swapping the first two blocks swaps the reset "
        "and update gates. (LSTM's i, f, g, o order is the same in both.)",
        "nnzoo's weight transfer swaps the blocks (keras_impl/recurrent.py)",
        (), lambda c: c.has("GRU"), probe_gru_gate_order,
        "max |output difference| over 6 steps, gates copied unswapped"),
    Difference(
        "attention_layout", "MultiheadAttention batch axis", "batch_first=False: (time, batch, "
        "width) unless told otherwise; q, k, v packed into in_proj_weight",
        "batch-first; separate query/key/value kernels (width, heads, head_dim)",
        "A sequence-first attention fed (batch, time, width) attends across the batch: each "
        "example's output depends on the others, silently.",
        "batch_first=True in every nnzoo attention; weight transfer splits/joins in_proj",
        (), lambda c: c.has("MultiheadAttention"), probe_attention_layout,
        "max change of example 0's output when only example 1 changes"),
    Difference(
        "ln_eps", "Layer-norm epsilon", "eps=1e-5", "epsilon=1e-3",
        "A small but systematic drift, largest for features of small variance.",
        "Keras receives epsilon=ln_eps", ("ln_eps",), lambda c: c.has("LayerNorm", "LayerNorm2d"),
        probe_ln_eps,
        "max |output difference| on unit-variance features"),
    Difference(
        "gelu", "GELU: exact or tanh approximation", "GELU(): exact (approximate='none')",
        "gelu: exact (approximate=False)",
        "The defaults agree; models trained with the tanh approximation (GPT-2, BERT's TF code) "
        "must say so, or every activation is slightly off.",
        "activation='gelu' (exact) or 'gelu_tanh', passed explicitly to both",
        ("activation",), lambda c: c.has("GELU"), probe_gelu,
        "max |gelu - gelu_tanh| on [-6, 6]", defaults_agree=True),
    Difference(
        "hard_sigmoid", "Hard sigmoid (and hard swish): which line",
        "Hardsigmoid: relu6(x + 3) / 6; Hardswish: x times that",
        "hard_sigmoid, hard_swish: relu6(x + 3) / 6 in Keras 3; clip(0.2 x + 0.5, 0, 1) in Keras 2 "
        "and tf.keras up to TensorFlow 2.15",
        "Keras 3 and PyTorch agree; a port from Keras 2 code (or its MobileNetV3 gates) brings "
        "the steeper 0.2 slope, and every gate and hard-swish is off.",
        "activation='hardswish' / the squeeze-excitation's 'hardsigmoid' gate, written as "
        "relu6(x + 3) / 6 in both builds",
        ("activation",), lambda c: c.has("Hardsigmoid", "HardSigmoid", "Hardswish"), probe_hard_sigmoid,
        "max |hard sigmoid difference| on [-6, 6], Keras 2's line", defaults_agree=True),
    Difference(
        "stochastic_depth", "Stochastic depth: whole examples or single values",
        "torchvision.ops.StochasticDepth(p, 'row'): drops an example's whole residual branch, "
        "scales the kept ones by 1 / (1 - p)",
        "no such layer; Dropout(p) drops single values",
        "A plain dropout on the branch keeps every example's branch in part: a different "
        "regulariser with the same rate and the same mean, so nothing looks wrong.",
        "Dropout(p, noise_shape=(None, 1, 1, 1)) in Keras (keras_impl/convnext.py); the parity "
        "and training checks set the rate to 0 and a test compares the two in distribution",
        ("stochastic_depth",), lambda c: c.has("StochasticDepth", where=lambda m: m.rate > 0),
        probe_stochastic_depth, "share of examples dropped in part, p = 0.2, 2x2x4 branch"),
    Difference(
        "kernel_layout", "Weight layouts", "dense (out, in); conv (out, in, kh, kw)",
        "dense (in, out); conv (kh, kw, in, out)",
        "A reshape instead of a transpose fits the shapes and scrambles the weights.",
        "one transfer rule per layer type (nnzoo/links.py)",
        (), lambda c: c.has(*WEIGHTED), probe_kernel_layout,
        "max |output difference|, 3x3 conv kernel reshaped instead of transposed"),
    Difference(
        "data_layout", "Image layout", "NCHW", "NHWC",
        "Each backend keeps its fast native layout; a tensor fed in the other one is read as "
        "nonsense (or refused, when the sizes differ).",
        "nnzoo.layout maps canonical NCHW to Keras NHWC and back",
        (), lambda c: c.spec.input_kind == "image", probe_data_layout,
        "max |output difference|, an NCHW 8x8x8 tensor fed to NHWC"),
    Difference(
        "flatten_order", "Flatten order before a dense layer", "flattens (C, H, W)",
        "flattens (H, W, C)",
        "The next dense layer's inputs arrive in another order, so transferred weights meet the "
        "wrong features.", "the Keras CNN permutes to (C, H, W) before Flatten (keras_impl/cnn.py)",
        ("global_pool",), _flattens_image, probe_flatten_order,
        "max |output difference|, dense layer on a flattened 4x3x3 feature map"),
    Difference(
        "column_order", "Image columns as sequence steps (CRNN)",
        "(N, C, H, W) -> permute(0, 3, 1, 2) -> (N, W, C*H): each column's features channel-major",
        "(N, H, W, C) -> Permute((2, 1, 3)) -> (N, W, H*C): row-major",
        "The layer reading the steps (a projection, an LSTM) gets each column's features in "
        "another order, so transferred weights meet the wrong features.",
        "the Keras hybrid build turns each column channel-major before flattening it "
        "(keras_impl/hybrid.py)",
        (), _column_steps, probe_column_order,
        "max |output difference|, dense layer on the 5 columns of a 4x3x5 feature map"),
    Difference(
        "upsample_bilinear", "Bilinear up-sampling grid", "align_corners=False (half-pixel)",
        "UpSampling2D bilinear: half-pixel",
        "The defaults agree; align_corners=True (common in older PyTorch code) does not.",
        "align_corners=False in PyTorch, UpSampling2D bilinear in Keras",
        ("upsample",), lambda c: c.has("Upsample", where=lambda m: "linear" in m.mode),
        probe_upsample_bilinear, "max |output difference| x2 on 8x8 with align_corners=True",
        defaults_agree=True),
    Difference(
        "default_init", "Default initialisation", "kaiming_uniform(a=sqrt 5): weights and biases "
        "U(+-1/sqrt(fan_in))", "glorot_uniform weights, zero biases",
        "The twins start from different weights (Keras's std is ~1.7x PyTorch's for a square "
        "dense layer): the same network, a different starting point.",
        "weights are transferred, not re-drawn (nnzoo.transfer_weights)",
        (), lambda c: True, probe_default_init,
        "max |output difference| of fresh twins (seed 0), 8-16-4 MLP"),
    Difference(
        "adam_epsilon", "Adam: where epsilon goes", "eps=1e-8, added after the bias correction: "
        "lr * m_hat / (sqrt(v_hat) + eps)", "epsilon=1e-7, added before it (the paper's "
        "epsilon-hat): lr_t * m / (sqrt(v) + epsilon)",
        "Keras's epsilon equals PyTorch's times sqrt(1 - beta2**t), a factor that changes every "
        "step (0.03 at step 1, 1 in the long run), so no constant epsilon makes stock Keras follow "
        "PyTorch; the gap is largest early and wherever gradients are small.",
        "nnzoo's Keras TorchAdam (keras_impl/training.py) has PyTorch's formula",
        ("OptimizerSpec.eps",), _training, probe_adam_epsilon, f"Adam(lr=1e-3), {TRAIN}"),
    Difference(
        "adamw_decay", "AdamW defaults", "weight_decay=0.01, eps=1e-8",
        "weight_decay=0.004, epsilon=1e-7 (before the bias correction)",
        "Both decay decoupled (w *= 1 - lr * wd), but by different default amounts: a port that "
        "leaves the defaults trains a differently regularised model.",
        "OptimizerSpec states weight_decay and eps; TorchAdam(decoupled=...) applies them",
        ("OptimizerSpec.weight_decay", "OptimizerSpec.eps"), _training, probe_adamw_decay,
        f"AdamW(lr=1e-3), defaults otherwise, {TRAIN}"),
    Difference(
        "sgd_weight_decay", "SGD weight decay: L2 in the gradient or decoupled",
        "weight_decay adds wd * w to the gradient, which then passes through the momentum",
        "weight_decay shrinks w by lr * wd * w apart from the gradient (decoupled)",
        "With momentum the two differ: PyTorch's decay is carried and amplified by the velocity "
        "(up to 1 / (1 - momentum) = 10x), Keras's is not.",
        "nnzoo's Keras TorchSGD adds the L2 term to the gradient, as PyTorch does",
        ("OptimizerSpec.weight_decay",), _training, probe_sgd_weight_decay,
        f"SGD(lr=0.1, momentum=0.9, weight_decay=5e-4) in both, {TRAIN}"),
    Difference(
        "sgd_momentum_schedule", "SGD momentum under a changing learning rate",
        "the velocity holds gradients; each step applies the current rate: w -= lr_t * v",
        "the velocity holds rate-scaled steps: v = m * v - lr_t * g; w += v",
        "At a constant rate the two are the same. When the rate drops, Keras's velocity still "
        "carries steps taken at the old rate for a while; PyTorch's scales at once.",
        "nnzoo's Keras TorchSGD keeps PyTorch's velocity whenever momentum meets a schedule",
        ("OptimizerSpec.schedule",), _training, probe_sgd_momentum_schedule,
        f"SGD(lr=0.1, momentum=0.9), rate x0.1 at step 10, {TRAIN}"),
    Difference(
        "grad_clipping", "Gradient clipping: global norm or per variable",
        "clip_grad_norm_(params, max_norm): one global norm over all gradients",
        "clipnorm: each variable's gradient clipped on its own; global_clipnorm: the global one",
        "Per-variable clipping changes the direction of the update (each tensor is rescaled by its "
        "own factor). Keras's global_clipnorm matches PyTorch except for PyTorch's 1e-6 in the "
        "denominator.", "OptimizerSpec.clip_norm is the global norm, with PyTorch's formula",
        ("OptimizerSpec.clip_norm",), _training, probe_grad_clipping,
        f"SGD(lr=0.1) with clip 0.1 (clipnorm in Keras), {TRAIN}"),
    Difference(
        "ce_logits", "Cross-entropy input: logits or probabilities",
        "CrossEntropyLoss takes logits (log-softmax inside)",
        "SparseCategoricalCrossentropy() expects probabilities unless from_logits=True",
        "Logits fed as probabilities are renormalised and clipped instead of soft-maxed: a "
        "different loss and different gradients, with no error.",
        "nnzoo's Keras loss is built with from_logits=True (keras_impl/training.py)",
        ("LossSpec.kind",), _training, probe_ce_logits,
        "|loss difference|, 8 rows of positive scores over 4 classes"),
    Difference(
        "mse_sum", "Mean squared error summed", "MSELoss(reduction='sum'): every squared error",
        "MeanSquaredError(reduction='sum'): the sum of each example's mean",
        "The defaults (mean over every element) agree; with 'sum' Keras is smaller by the output "
        "width, and so are its gradients.",
        "LossSpec.reduction has one value, 'mean', which means the same in both",
        ("LossSpec.reduction",), _training, probe_mse_sum,
        "relative |loss difference| with reduction 'sum', 8 x 4 outputs", defaults_agree=True),
    Difference(
        "data_parallel_bn", "Batch-norm statistics per replica unless synchronized",
        "DistributedDataParallel: each process normalises with its own slice's statistics, and "
        "broadcasts rank 0's running statistics, unless the model is converted to SyncBatchNorm "
        "(CUDA only)",
        "tf.distribute.MirroredStrategy: per replica unless BatchNormalization("
        "synchronized=True); keras.distribution.DataParallel on JAX: the global batch's (one "
        "program over the whole batch)",
        "Data-parallel training on B/N examples per replica is one process's training on B only "
        "where every layer sees the whole batch. Batch norm's mean and variance then come from "
        "a slice: the normalisation, the gradients and the running statistics all change, and "
        "the replicas' statistics part ways.",
        "nnzoo.torch_impl.distributed.synchronize_batchnorm: a CPU-capable synchronized batch "
        "norm (an autograd-aware all-reduce of the per-channel sums); on TensorFlow, "
        "synchronized=True, which nnzoo's Keras batch norm honours (measured the same: 1.5e-2 "
        "per replica, 2.2e-16 synchronized, nnzoo.data_parallel_parity)",
        (), _training, probe_data_parallel_bn,
        "after 3 float64 SGD steps of a small ResNet on global batches of 4, 2 DDP processes "
        "(gloo) against one process, max |weight or running-statistic difference|"),
)

BY_ID = {d.id: d for d in REGISTRY}
assert len(BY_ID) == len(REGISTRY), "difference ids must be unique"


@functools.cache
def _measured(id_: str, settled: bool) -> float:
    import torch

    with torch.random.fork_rng(devices=[]):  # probes seed torch; the caller's state is kept
        return float(BY_ID[id_].probe(settled))


def applicable(trace: Any) -> list[Difference]:
    """The differences a traced PyTorch build (see `nnzoo.tracing.trace`) touches."""
    ctx = Context.of(trace)
    return [d for d in REGISTRY if d.applies(ctx)]


# ---- the generated document ------------------------------------------------------------------
def render_markdown() -> str:
    lines = [
        "# Framework differences: PyTorch and Keras 3",
        "",
        "Generated by `python -m nnzoo.differences --write docs/framework-differences.md` from "
        "the registry in `nnzoo/differences.py`; `tests/test_differences.py` keeps it in sync.",
        "Every number is measured by nnzoo: a seeded pair of real PyTorch and Keras layers, left "
        "to the frameworks' defaults (or, where the defaults agree, to the common mistake), "
        "rounded to 2 significant digits. With nnzoo's explicit settings each probe agrees "
        "within 1e-5. `nnzoo explain NAME` lists the ones a model touches.",
        "",
        "| difference | PyTorch | Keras | effect if ignored | settled by |",
        "|---|---|---|---|---|",
    ]
    for d in REGISTRY:
        lines.append(f"| [{d.title}](#{d.id}) | {d.pytorch} | {d.keras} | "
                     f"{d.effect_text()}{' ' + d.unit if d.unit else ''} | {_fields(d)} |")
    for d in REGISTRY:
        lines += ["", f"## <a id=\"{d.id}\"></a>{d.title}", "",
                  f"- PyTorch: {d.pytorch}", f"- Keras: {d.keras}", f"- Why it matters: "
                  f"{d.explanation}", f"- Settled by: {d.settled_by}"
                  + (f" (spec field{'s' if len(d.fields) > 1 else ''} "
                     f"{', '.join(f'`{f}`' for f in d.fields)})" if d.fields else ""),
                  f"- Measured{' (the defaults agree; the common mistake)' if d.defaults_agree else ''}"
                  f": {d.metric} = **{d.effect_text()}**{' ' + d.unit if d.unit else ''}; "
                  "with nnzoo's settings <= 1e-5"]
    return "\n".join(lines) + "\n"


def _fields(d: Difference) -> str:
    return ", ".join(f"`{f}`" for f in d.fields) if d.fields else d.settled_by.split(" (")[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnzoo.differences", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", help="write the markdown document")
    group.add_argument("--check", metavar="PATH", help="exit 1 if PATH differs from the registry")
    args = parser.parse_args(argv)
    text = render_markdown()
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.write}")
    elif args.check:
        with open(args.check, encoding="utf-8") as f:
            same = f.read() == text
        print(f"{args.check} is {'up to date' if same else 'STALE: regenerate with --write'}")
        return 0 if same else 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
