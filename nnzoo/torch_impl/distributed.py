"""Data-parallel training of a PyTorch build: `DistributedDataParallel` (or FSDP's `fully_shard`)
over gloo, one process per rank, each training on its own slice of every global batch with nnzoo's `Trainer`.

A worker is `python -m nnzoo.torch_impl.distributed JOB.json OUTDIR`, configured by torchrun's
environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so `torchrun` can start it unchanged,
on one machine or several. `nnzoo.distributed` starts, watches and stops the workers and compares
what they return; the job (a JSON dict) is described there.

PyTorch's own `SyncBatchNorm` refuses CPU tensors ("expected input tensor to be on GPU"), so the
synchronized batch norm here is nnzoo's: the same maths over an autograd-aware all-reduce.
`nnzoo/keras_impl/distributed.py` is the twin.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed import _functional_collectives as funcol
from torch.nn.modules.batchnorm import _BatchNorm

from nnzoo import backends
from nnzoo.registry import spec_from_dict
from nnzoo.runtime import exit_with_parent, save_results
from nnzoo.specs.training import LossSpec, optimizer_spec, synthetic_batch
from nnzoo.torch_impl.training import Trainer


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    """The sum over every rank, differentiable: its gradient is the sum of the ranks' gradients
    (the functional collective; `torch.distributed.nn.functional.all_reduce` is deprecated)."""
    return funcol.all_reduce(t, "sum", dist.group.WORLD)


class SyncBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are the global batch's, over every process of the
    default group: the per-channel sums are all-reduced, and so are their gradients (the
    all-reduce is differentiable), so each rank's backward pass sees every rank's loss through
    the shared mean and variance -- as one process would on the whole batch. Running statistics
    take the unbiased variance of the global batch, as `nn.BatchNorm2d` does of its batch.
    Outside a process group, or in eval mode, it is a plain batch norm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected a (batch, channels, ...) input, got {input.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype)
        dist.all_reduce(count)  # elements per channel over every rank (not differentiated)
        n = float(count.item())
        mean = _all_reduce(x.sum(dims)) / n
        centred = x - mean.view(shape)
        var = _all_reduce((centred * centred).sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                     else self.momentum)
                self.running_mean.mul_(1 - f).add_(mean.detach(), alpha=f)
                self.running_var.mul_(1 - f).add_(var.detach() * (n / max(n - 1, 1)), alpha=f)
        return out


def synchronize_batchnorm(module: nn.Module) -> nn.Module:
    """Every batch norm in `module` replaced, in place, by `SyncBatchNorm` with the same settings,
    weights and statistics under the same names (state-dict keys unchanged); returns `module`.
    The CPU-capable counterpart of `nn.SyncBatchNorm.convert_sync_batchnorm`."""
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, SyncBatchNorm):
            like = child.running_mean if child.running_mean is not None else child.weight
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                 child.track_running_stats, dtype=like.dtype)
            sync.load_state_dict(child.state_dict())
            sync.train(child.training)
            setattr(module, name, sync)
        else:
            synchronize_batchnorm(child)
    return module


def _full(t: torch.Tensor) -> torch.Tensor:
    """A tensor whole: an FSDP shard (a DTensor) gathered from every rank."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
    return a.astype(dtype) if a.dtype.kind == "f" else a


def train_case(case: dict[str, Any], job: dict[str, Any], *, rank: int = 0, world: int = 1,
               say: Any = None) -> dict[str, Any]:
    """Train one case of the job: with `world` > 1 under DDP, or FSDP's `fully_shard` when the
    case's engine is "fsdp", as rank `rank` (inside an initialized process group), on its slice
    of each global batch; with `world` 1 as one process on the
    whole batch (the reference). Returns the final state dict (numpy), the global batch's loss
    before each step, the parameters' keys, and whether the model has batch norm."""
    spec = spec_from_dict(case["spec"])
    loss = LossSpec(**case["loss"])
    opt = optimizer_spec(job["optimizer"])
    steps, batch, seed, dtype = job["steps"], job["batch"], job["seed"], job["dtype"]
    model = backends.build_native(spec, "torch", seed=seed, dtype=dtype)
    net: nn.Module = model
    if world > 1 and case["sync_bn"]:
        synchronize_batchnorm(model)
    if world > 1 and case.get("engine", "ddp") == "fsdp":
        from torch.distributed.fsdp import fully_shard

        fully_shard(model)  # parameters sharded across the ranks, gathered for each step
    elif world > 1:
        net = nn.parallel.DistributedDataParallel(model)
        net.spec = spec  # what Trainer reads
    trainer = Trainer(net, opt, loss, steps=steps)
    x, y = synthetic_batch(spec, loss, batch * steps, seed)
    x, y = _cast(x, dtype), _cast(y, dtype)
    shard = batch // world
    if world > 1:  # a worker's own process: dropout draws its own masks per rank, reproducibly
        torch.manual_seed(seed + rank)
    losses = []
    for k in range(steps):
        lo = k * batch + rank * shard
        value = trainer.step(x[lo:lo + shard], y[lo:lo + shard])
        if world > 1:  # equal shards: the mean of the ranks' mean losses is the global mean
            t = torch.tensor([value], dtype=torch.float64)
            dist.all_reduce(t)
            value = float(t.item()) / world
        losses.append(value)
        if say is not None:
            say(f"{case['label']}: step {k + 1}/{steps}  loss {value:.6f}")
    state = {k: _full(v).detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    return {"state": state, "losses": losses, "params": [k for k, _ in model.named_parameters()],
            "batchnorm": any(isinstance(m, _BatchNorm) for m in model.modules())}


def main(argv: list[str] | None = None) -> int:
    """One worker: join the process group, train every case of the job, write
    OUTDIR/rank{RANK}.npz (rank 0 prints progress when the job asks). Any failure is written to
    OUTDIR/rank{RANK}.error and ends the worker with status 1."""
    job_path, out_dir = (argv if argv is not None else sys.argv[1:])[:2]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    out = Path(out_dir)
    exit_with_parent()
    try:
        job = json.loads(Path(job_path).read_text())
        torch.set_num_threads(int(job.get("threads", 1)))
        if job.get("crash_rank") == rank:  # a worker dying abruptly, for the launcher's tests
            os._exit(3)
        dist.init_process_group("gloo", rank=rank, world_size=world,
                                timeout=timedelta(seconds=float(job.get("timeout", 300))))
        say = (lambda line: print(line, flush=True)) if job.get("progress") and rank == 0 else None
        results: list[dict[str, Any]] = []
        done: dict[str, dict[str, Any]] = {}  # without batch norm, sync_bn changes nothing
        for case in job["cases"]:
            key = json.dumps([case["spec"], case.get("engine")], sort_keys=True)
            if key in done and not done[key]["batchnorm"]:
                results.append(done[key])
                continue
            results.append(train_case(case, job, rank=rank, world=world, say=say))
            done[key] = results[-1]
        dist.barrier()
        save_results(out / f"rank{rank}.npz", results)
        return 0
    except BaseException:
        (out / f"rank{rank}.error").write_text(traceback.format_exc())
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _exit(status: int) -> None:
    """End the worker without C++ static destruction: with its result written and the process
    group destroyed, a gloo thread still joinable at teardown made a finished worker abort
    ("terminate called without an active exception", SIGABRT) in 2 of 20 launches on a loaded
    2-core machine, failing a run that had succeeded. `os._exit` skips exactly that teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    _exit(main())
