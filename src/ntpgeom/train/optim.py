"""Optimizers of a run: AdamW (the paper's, §2.3), Adam (coupled L2), GD and normalized GD.

The LR may be a 0-dim device tensor, so that a captured CUDA graph follows the LR schedule.
"""

from __future__ import annotations

import torch

from ntpgeom.train.config import TrainConfig


class GD(torch.optim.Optimizer):
    """Plain gradient descent, p ← p − η(∇p + wd·p) (wd: coupled L2, as torch's SGD).

    ``normalize=True``: normalized GD, p ← p − η g/‖g‖ with g = ∇p + wd·p and ‖g‖ over all
    parameters (the NeurIPS paper's NGD, App. A).

    ``lr`` may be a 0-dim tensor, so that a captured CUDA graph follows the LR schedule.
    """

    def __init__(self, params, lr: float | torch.Tensor, weight_decay: float = 0.0,
                 normalize: bool = False) -> None:
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})
        self.normalize = normalize

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        assert closure is None, "full-batch GD takes no closure"
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            grads = [p.grad.add(p, alpha=wd) if wd else p.grad
                     for p in group["params"] if p.grad is not None]
            # Normalized GD (NeurIPS App. A): a step of length η along −∇, the gradient's norm
            # taken over all parameters together; clamped so that a zero gradient stays zero.
            scale = (torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                           for g in grads]))
                     .clamp_min(torch.finfo(grads[0].dtype).tiny)
                     if self.normalize and grads else None)
            for p, g in zip([p for p in group["params"] if p.grad is not None], grads,
                            strict=True):
                if scale is not None:
                    g = g / scale
                if isinstance(lr, torch.Tensor):
                    p.sub_(g * lr)
                else:
                    p.add_(g, alpha=-lr)


def make_optimizer(config: TrainConfig, params, device: torch.device,
                   lr_tensor: torch.Tensor | None = None) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA: one kernel for all parameters) or GD.

    With ``lr_tensor`` (graph mode) the LR lives on the device and is changed in place.
    """
    lr: float | torch.Tensor = lr_tensor if lr_tensor is not None else config.lr_at(0)
    if config.optimizer in ("gd", "ngd"):
        return GD(params, lr=lr, weight_decay=config.weight_decay,
                  normalize=config.optimizer == "ngd")
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=config.betas, eps=config.eps,
                                weight_decay=config.weight_decay,
                                fused=True if device.type == "cuda" else None)
    return torch.optim.AdamW(params, lr=lr, betas=config.betas, eps=config.eps,
                             weight_decay=config.weight_decay,
                             fused=True if device.type == "cuda" else None)
