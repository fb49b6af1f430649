"""Training a PyTorch build: PyTorch's own optimizers, schedules, clipping and losses, built from
the framework-neutral specs of `nnzoo/specs/training.py` (which state PyTorch's maths, so every
piece here is the stock class). `nnzoo/keras_impl/training.py` is the twin.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nnzoo.specs.base import Spec
from nnzoo.specs.training import LossSpec, OptimizerSpec


class StepCrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy of per-step logits (N, steps, C): PyTorch's loss wants the classes on axis 1."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(logits.transpose(1, 2), target)


def build_loss(loss: LossSpec) -> nn.Module:
    """Cross-entropy on logits (per pixel for (N, C, H, W) logits, per step for (N, steps, C))
    or mean squared error."""
    if loss.kind == "mse":
        return nn.MSELoss(reduction=loss.reduction)
    if loss.kind == "step_cross_entropy":
        return StepCrossEntropy(reduction=loss.reduction)
    return nn.CrossEntropyLoss(reduction=loss.reduction)


def build_optimizer(opt: OptimizerSpec, model: nn.Module) -> torch.optim.Optimizer:
    """`torch.optim.SGD`, `Adam` or `AdamW` over every trainable parameter (one group)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if opt.kind == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov,
                               weight_decay=opt.weight_decay)
    cls = torch.optim.Adam if opt.kind == "adam" else torch.optim.AdamW
    return cls(params, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay)


def build_schedule(opt: OptimizerSpec, optimizer: torch.optim.Optimizer, *, steps: int,
                   ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """`StepLR` or `CosineAnnealingLR`, stepped once per update; None for a constant rate."""
    s = opt.schedule
    if s.kind == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    if s.kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.horizon(steps),
                                                          eta_min=s.min_lr)
    return None


def gradients(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor,
              ) -> tuple[float, dict[str, torch.Tensor]]:
    """The loss on (x, y) in training mode and each trainable parameter's gradient, by state-dict
    key (zeros for a parameter the loss does not reach). Batch-norm statistics move, as in a
    training step."""
    model.train()
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    grads = {k: p.grad if p.grad is not None else torch.zeros_like(p)
             for k, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()), grads


class Trainer:
    """One PyTorch build, its optimizer, schedule and loss: `step(x, y)` is one update."""

    def __init__(self, model: nn.Module, opt: OptimizerSpec, loss: LossSpec, *, steps: int) -> None:
        self.model, self.opt = model, opt
        self.spec: Spec = model.spec
        self.loss_fn = build_loss(loss)
        self.optimizer = build_optimizer(opt, model)
        self.schedule = build_schedule(opt, self.optimizer, steps=steps)
        self.dtype = next(model.parameters()).dtype

    def tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Canonical numpy arrays as the model's tensors (floats in its dtype)."""
        tx = torch.from_numpy(np.ascontiguousarray(x))
        ty = torch.from_numpy(np.ascontiguousarray(y))
        if tx.is_floating_point():
            tx = tx.to(self.dtype)
        if ty.is_floating_point():
            ty = ty.to(self.dtype)
        return tx, ty

    def gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        loss, grads = gradients(self.model, self.loss_fn, *self.tensors(x, y))
        return loss, {k: g.detach().cpu().numpy() for k, g in grads.items()}

    @property
    def lr(self) -> float:
        """The learning rate the next update uses."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One update on (x, y): gradients, global-norm clipping, optimizer, schedule. Returns
        the loss before the update."""
        loss, _ = gradients(self.model, self.loss_fn, *self.tensors(x, y))
        if self.opt.clip_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.opt.clip_norm)
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()
        return loss
