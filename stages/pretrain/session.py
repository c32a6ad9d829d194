"""A training session: everything a run holds, built from the cache (and a checkpoint on resume).

Determinism: weights are seeded, batch order and augmentation derive from (seed, epoch,
position), and a checkpoint stores everything else that changes (weights, optimizer,
scheduler, step, RNG), so ``--resume`` after a kill reaches the uninterrupted result.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from stages import __version__
from stages.cache import load_cache
from stages.common.errors import SetupError
from stages.pretrain.checkpoint import (FINAL_CHECKPOINT, LAST_CHECKPOINT, CacheSource, Checkpoint, RunConfig,
                                        read_checkpoint, remove_partial_checkpoints)
from stages.pretrain.config import RUN_ONLY_KEYS, PretrainConfig, TrainConfig
from stages.pretrain.data import (Augmentation, CacheDataset, CandidateTable, GlobalBatchSampler, SamplePlan,
                                  plan_samples)
from stages.pretrain.distributed import DistInfo, barrier
from stages.pretrain.factory import build_model
from stages.pretrain.model import CTGlipModel
from stages.pretrain.objective import Objective
from stages.pretrain.schedule import WarmupCosine, budget_steps_per_epoch


def autocast_factory(device: torch.device, precision: str) -> Callable[[], AbstractContextManager]:
    """bf16 autocast on CUDA under ``auto``; exact fp32 on CPU unless bf16 is asked for."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext


@dataclass
class Session:
    """Everything a run holds while training (built by :func:`prepare`)."""

    config: PretrainConfig
    info: DistInfo
    device: torch.device
    plan: SamplePlan
    run_config: RunConfig
    model: CTGlipModel
    step_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    sampler: GlobalBatchSampler
    loader: DataLoader
    val_set: CacheDataset | None
    text_embeddings: torch.Tensor
    objective: Objective
    autocast: Callable[[], AbstractContextManager]
    steps_per_epoch: int
    step: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return self.config.train.epochs * self.steps_per_epoch

    @property
    def grounded(self) -> bool:
        return self.config.mode == "grounded"

    @property
    def channels_last(self) -> bool:
        return self.config.train.channels_last and self.device.type == "cuda"


def prepare(config: PretrainConfig, info: DistInfo, device: torch.device) -> Session:
    """Read the cache, split it, build model/optimizer/data, and restore a checkpoint on resume."""
    cache = load_cache(config.cache_dir, kind="organ" if config.mode == "grounded" else "volume")
    train_cfg, grounded = config.train, config.mode == "grounded"
    check_run_dir(config.out_dir, config.resume)
    if info.is_main:
        remove_partial_checkpoints(config.out_dir)
    texts = torch.from_numpy(cache.text_embeddings.astype("float32"))
    plan = plan_samples(cache.index, len(cache.texts), len(cache.organ_vocab) if grounded else None,
                        train_cfg.val_fraction, train_cfg.seed, train_cfg.include_incomplete)
    if not plan.train_rows:
        raise SetupError(f"{config.cache_dir}: no usable training samples (all incomplete or invalid)")
    run_config = describe_run(config, cache, int(texts.shape[1]))
    torch.manual_seed(train_cfg.seed)
    model = build_model(run_config.model, text_dim=int(texts.shape[1])).to(device)
    if config.train.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    candidates = CandidateTable.from_cache(cache) if grounded else None
    abnormal = cache.index["abnormal"].astype(bool).tolist()
    sampler = GlobalBatchSampler([abnormal[row] for row in plan.train_rows], train_cfg.batch_size, info.rank,
                                 info.world_size, train_cfg.seed, train_cfg.oversample_abnormal)
    augmentation = Augmentation.from_hu(train_cfg.jitter_hu, cache.preprocess.window, train_cfg.jitter_contrast,
                                        train_cfg.shift_voxels, train_cfg.flip_axes) if train_cfg.augment else None
    train_set = CacheDataset(cache, plan.train_rows, candidates, train_cfg.seed, augmentation)
    loader = DataLoader(train_set, batch_size=sampler.local_batch, sampler=sampler,
                        num_workers=train_cfg.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=train_cfg.num_workers > 0)
    steps_per_epoch = budget_steps_per_epoch(config, sampler)
    total_steps = train_cfg.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(parameter_groups(model, train_cfg.weight_decay), lr=train_cfg.lr)
    warmup = int(round(train_cfg.warmup_fraction * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup, total_steps))
    step_model: nn.Module = model
    if info.is_distributed:
        step_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if train_cfg.compile:
        step_model = torch.compile(step_model)
    text_embeddings = texts.to(device)
    session = Session(
        config=config, info=info, device=device, plan=plan, run_config=run_config, model=model,
        step_model=step_model, optimizer=optimizer, scheduler=scheduler, sampler=sampler, loader=loader,
        val_set=CacheDataset(cache, plan.val_rows, candidates, train_cfg.seed, None) if plan.val_rows else None,
        text_embeddings=text_embeddings,
        objective=Objective(train_cfg, text_embeddings, candidates, info.rank, info.world_size),
        autocast=autocast_factory(device, train_cfg.precision), steps_per_epoch=steps_per_epoch)
    if config.resume:
        restore(session, read_checkpoint(config.out_dir / LAST_CHECKPOINT, device))
    barrier(info)
    return session


def describe_run(config: PretrainConfig, cache: Any, text_dim: int) -> RunConfig:
    """The checkpoint's ``config``: everything needed to rebuild the model and its inputs."""
    preprocess = cache.preprocess
    input_size = preprocess.crop_size if config.mode == "grounded" else preprocess.volume_size
    model = {**config.model, "input_size": [int(size) for size in input_size],
             # a whole volume knows where its organs are; positions only describe organ crops
             "position_features": bool(config.model.get("position_features")) and config.mode == "grounded"}
    if model.get("density_source") == "scan" and model.get("density_bins"):
        if "density" not in cache.index.columns:
            raise SetupError(f"{config.cache_dir}: this cache has no organ density histograms (built by an older "
                             "ctglip); rebuild it with `ctglip cache` into a new folder")
        model["density_bins"] = int(preprocess.density_bins)  # the histograms the cache measured
    return RunConfig(
        mode=config.mode,
        model=model,
        train=config.train.to_dict(),
        cache=CacheSource(path=str(config.cache_dir.resolve()), config_hash=cache.manifest.get("config_hash", ""),
                          content_hash=cache.manifest.get("content_hash", ""), preprocess=preprocess),
        text_encoder={**dict(cache.text_encoder), "dim": text_dim},
        organ_vocab=list(cache.organ_vocab),
        abnormality_dictionary={organ: {phrase: int(count) for phrase, count in phrases.items()}
                                for organ, phrases in cache.abnormality_dictionary.items()},
        ctglip_version=__version__,
    )


def check_run_dir(out_dir: Path, resume: bool) -> None:
    """Refuse to overwrite a run; refuse to resume nothing."""
    has_run = (out_dir / LAST_CHECKPOINT).exists() or (out_dir / FINAL_CHECKPOINT).exists()
    if resume and not (out_dir / LAST_CHECKPOINT).is_file():
        raise SetupError(f"{out_dir / LAST_CHECKPOINT}: nothing to resume (no checkpoint in {out_dir})")
    if has_run and not resume:
        raise SetupError(f"{out_dir} already holds a pretraining run; pass --resume to continue it "
                              "or choose another output folder")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and kernels only (not biases, norms or the temperature)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def config_differences(stored: RunConfig, current: RunConfig) -> list[str]:
    """Settings that would make a resumed run differ from the one in the checkpoint."""
    differences = [key for key in ("mode", "model") if getattr(stored, key) != getattr(current, key)]
    # content_hash ignores where the cache lives and how many workers built it
    if stored.cache.content_hash != current.cache.content_hash:
        differences.append("cache (different preprocessing or contents)")
    # settings added after a checkpoint was written compare as their defaults
    stored_train, current_train = {**TrainConfig().to_dict(), **stored.train}, current.train
    differences += [f"train.{key}" for key in sorted(set(stored_train) | set(current_train))
                    if key not in RUN_ONLY_KEYS and stored_train.get(key) != current_train.get(key)]
    return differences


def restore(session: Session, checkpoint: Checkpoint) -> None:
    """Load weights, optimizer, scheduler, counters, metrics and RNG from ``checkpoint``."""
    path = session.config.out_dir / LAST_CHECKPOINT
    differences = config_differences(checkpoint.config, session.run_config)
    if differences:
        raise SetupError(f"{path}: cannot resume with different settings: {', '.join(differences)}")
    session.model.load_state_dict(checkpoint.model)
    session.optimizer.load_state_dict(checkpoint.optimizer)
    session.scheduler.load_state_dict(checkpoint.scheduler)
    session.step = checkpoint.step
    session.metrics = list(checkpoint.metrics)
    torch.set_rng_state(checkpoint.rng["torch"].cpu())
    if session.device.type == "cuda" and checkpoint.rng.get("cuda"):
        torch.cuda.set_rng_state_all([state.cpu() for state in checkpoint.rng["cuda"]])


def snapshot(session: Session) -> Checkpoint:
    """The session's state now, as the checkpoint that ``restore`` reads back."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if session.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return Checkpoint(
        model=session.model.state_dict(), config=session.run_config, step=session.step,
        total_steps=session.total_steps, epochs_done=session.step // session.steps_per_epoch,
        epochs_planned=session.config.train.epochs, finished=session.step >= session.total_steps,
        optimizer=session.optimizer.state_dict(), scheduler=session.scheduler.state_dict(), rng=rng,
        metrics=session.metrics)
