"""Train one zoo CNN on real data in PyTorch and in Keras, from the same initial weights.

The data is scikit-learn's bundled handwritten digits (1,797 grey 8x8 images of 0-9; shipped
with scikit-learn, nothing is downloaded). `cnn_small` -- three conv/batch-norm/max-pool stages
and a 256-wide classifier -- is built once per framework, PyTorch's initial weights are copied
into Keras, and both are trained on the same shuffled batches with the same optimizer (SGD with
momentum, PyTorch's maths in both; dropout off, since two frameworks cannot draw the same random
masks). The two loss curves, their difference and both test accuracies come out.

    python examples/digits.py                     # 8 epochs, float32, writes digits.png
    python examples/digits.py --dtype float64     # the curves then agree to ~1e-12
    KERAS_BACKEND=jax python examples/digits.py   # any Keras backend
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import nnzoo
from nnzoo import backends
from nnzoo.runtime import run


def load_digits(limit: int | None = None, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Train/test split (80/20, shuffled) of scikit-learn's digits as NCHW float images in [0, 1]
    and int64 labels."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8); pixels are 0..16
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))[:limit]
    x, y = x[order], y[order]
    cut = int(0.8 * len(x))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of an nnzoo model of either framework (inference mode)."""
    return float(np.mean(run(model, x).argmax(axis=1) == y))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn_small")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--limit", type=int, help="use only this many images (quick runs)")
    parser.add_argument("--out", default="digits.png", help="the figure (PNG)")
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test = load_digits(args.limit)
    steps = args.epochs * math.ceil(len(x_train) / args.batch)
    result = nnzoo.train_parity(
        args.model, in_channels=1, image_size=8, num_classes=10,
        data=(x_train, y_train), steps=steps, batch=args.batch, dtype=args.dtype,
        optimizer={"kind": "sgd", "lr": args.lr, "momentum": 0.9}, keep_models=True)
    torch_model, keras_model = result.models
    with backends.float64_scope() if args.dtype == "float64" else contextlib.nullcontext():
        scores = {"torch": accuracy(torch_model, x_test.astype(args.dtype), y_test),
                  "keras": accuracy(keras_model, x_test.astype(args.dtype), y_test)}
    first, last = result.steps[0], result.steps[-1]
    print(f"{args.model} on digits: {len(x_train)} training and {len(x_test)} test images, "
          f"{args.epochs} epochs ({steps} steps of {args.batch}), {result.describe()}")
    print(f"  loss      PyTorch {first.loss_torch:.4f} -> {last.loss_torch:.4f}   "
          f"Keras {first.loss_keras:.4f} -> {last.loss_keras:.4f}")
    print(f"  largest loss difference {max(s.loss_diff for s in result.steps):.1e}, "
          f"largest weight difference {max(result.weight_diffs):.1e}")
    print(f"  test accuracy  PyTorch {scores['torch']:.1%}   Keras {scores['keras']:.1%}")
    print(f"  figure: {result.plot(args.out)}")
    return {"result": result, "accuracy": scores}


if __name__ == "__main__":
    main(sys.argv[1:])
