"""Optimisers for auto-decoder code tables.

A code row gets a gradient only in the steps whose batch holds its scan (about once per
epoch). Plain Adam keeps moving every row on its stale first moment in all the other steps,
and its bias correction counts steps the row never took part in. :class:`RowAdam` is Adam
applied row by row, only to the rows present in the step ("lazy" Adam, as TensorFlow's
LazyAdam and torch's SparseAdam do for sparse gradients), with a per-row step count for the
bias correction. It works on dense gradients, so DDP's all-reduce needs nothing special.
"""
from __future__ import annotations

from typing import Iterable

import torch


class RowAdam(torch.optim.Optimizer):
    """Adam over the rows of 2-D parameters (code tables (R, d)); a row whose gradient is all zero
    in a step (its scan was not in the batch) keeps its value and its moments.

    Same arguments and update as :class:`torch.optim.Adam` (no weight decay, no amsgrad); the
    state holds ``exp_avg``/``exp_avg_sq`` (R, d) and ``steps`` (R,) per parameter.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.dim() != 2:
                    raise ValueError("RowAdam updates 2-D code tables (rows, dim)")
                grad = param.grad
                state = self.state[param]
                if not state:
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                    state["steps"] = torch.zeros(param.shape[0], dtype=param.dtype, device=param.device)
                # Masked arithmetic instead of indexing the present rows: no host sync.
                present = (grad != 0).any(dim=1)
                mask = present[:, None].to(param.dtype)
                steps = state["steps"].add_(present.to(param.dtype))
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.add_(mask * (1 - beta1) * (grad - exp_avg))
                exp_avg_sq.add_(mask * (1 - beta2) * (grad * grad - exp_avg_sq))
                safe = steps.clamp_min(1)[:, None]
                corrected1 = 1 - beta1 ** safe
                corrected2 = 1 - beta2 ** safe
                update = (exp_avg / corrected1) / ((exp_avg_sq / corrected2).sqrt() + group["eps"])
                param.sub_(group["lr"] * mask * update)
        return loss
