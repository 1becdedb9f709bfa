"""Learning-rate schedule of the authors: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  warmup_start_factor: float = 0.5, min_factor: float = 0.05) -> torch.optim.lr_scheduler.LambdaLR:
    """LR factor: warmup_start_factor -> 1 over `warmup_steps`, then cosine from 1 to `min_factor`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return warmup_start_factor + (1 - warmup_start_factor) * step / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
