"""How many steps a run takes and how its learning rate moves: linear warmup, then cosine decay."""
from __future__ import annotations

import math

from stages.cache import load_cache
from stages.pretrain.config import PretrainConfig
from stages.pretrain.data import GlobalBatchSampler, plan_samples


class WarmupCosine:
    """Learning-rate factor: linear warmup, then cosine decay to zero.

    A plain object (not a closure) so the scheduler's state dict holds its two ints.
    """

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def budget_steps_per_epoch(config: PretrainConfig, sampler: GlobalBatchSampler) -> int:
    """Optimizer steps per epoch of the training budget.

    Grounded mode: one pass over the organ samples. Global mode gets the *same* budget
    (steps x global batch, i.e. pairs seen) as grounded mode on the same cache, so the
    vanilla-CLIP baseline is not starved by having one sample per scan; its data sampler
    simply cycles through the volumes more often.
    """
    if config.mode == "grounded":
        return sampler.batches_per_epoch
    train_cfg = config.train
    organs = load_cache(config.cache_dir, kind="organ")
    plan = plan_samples(organs.index, len(organs.texts), len(organs.organ_vocab), train_cfg.val_fraction,
                        train_cfg.seed, train_cfg.include_incomplete)
    abnormal = organs.index["abnormal"].astype(bool).tolist()
    organ_sampler = GlobalBatchSampler([abnormal[row] for row in plan.train_rows], train_cfg.batch_size, 0, 1,
                                       train_cfg.seed, train_cfg.oversample_abnormal)
    return organ_sampler.batches_per_epoch
