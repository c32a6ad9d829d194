"""The pretraining loop: AdamW steps with clipping under DDP, per-epoch validation, checkpoints, outputs."""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from stages.common.errors import SetupError
from stages.common.manifest import StageResult, package_versions, write_manifest
from stages.common.outputs import claim_output
from stages.common.progress import ProgressReporter, SilentProgress
from stages.pretrain.checkpoint import FINAL_CHECKPOINT, LAST_CHECKPOINT, save_checkpoint
from stages.pretrain.config import PretrainConfig
from stages.pretrain.distributed import (all_reduce_sum, barrier, destroy_process_group, init_process_group,
                                         resolve_device, world_info_from_env)
from stages.pretrain.evaluate import validate
from stages.pretrain.io import plot_metrics, write_config_json, write_metrics_csv
from stages.pretrain.session import Session, prepare, snapshot


@dataclass
class PretrainResult(StageResult):
    """StageResult plus the last validation metrics and whether training reached its end."""

    final_metrics: dict[str, float] = field(default_factory=dict)
    completed: bool = True


def run(config: PretrainConfig, progress: ProgressReporter | None = None) -> PretrainResult:
    """Train (or resume) one run; under torchrun every rank calls this with the same config."""
    info = world_info_from_env()
    device = resolve_device(config.device, info)
    owns_group = info.is_distributed and not dist.is_initialized()
    init_process_group(info, device)
    torch_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        with claim_output(config.out_dir, "pretrain") if info.is_main else nullcontext():
            session = prepare(config, info, device)
            return fit(session, progress if (progress is not None and info.is_main) else SilentProgress())
    finally:
        torch.set_num_threads(torch_threads)
        if owns_group:
            destroy_process_group()


def train_step(session: Session, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """One optimizer step on this rank's share of the global batch; returns rank-averaged losses."""
    loss, terms, logit_scale = session.objective(session.step_model, batch, session.autocast, session.channels_last)
    session.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if session.config.train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(session.model.parameters(), session.config.train.grad_clip)
    session.optimizer.step()
    session.scheduler.step()
    values = torch.stack([loss.detach()] + [value.detach() for value in terms.values()])
    values = all_reduce_sum(values, session.info.world_size) / session.info.world_size
    report = dict(zip(["loss", *terms], values.tolist()))
    if not math.isfinite(report["loss"]):
        raise SetupError(f"loss became {report['loss']} at step {session.step + 1}; lower --lr "
                           f"(the last good checkpoint is {session.config.out_dir / LAST_CHECKPOINT})")
    report["logit_scale"] = float(logit_scale.detach())
    return report


def fit(session: Session, progress: ProgressReporter) -> PretrainResult:
    """Run steps until the end (or ``stop_after_steps``), validating each epoch; write outputs."""
    config, info = session.config, session.info
    data_epoch_steps = session.sampler.batches_per_epoch
    stop_at = min(session.total_steps, config.stop_after_steps or session.total_steps)
    progress.start(session.total_steps, f"pretrain ({config.mode}, {info.world_size} process"
                                         f"{'es' if info.is_distributed else ''})")
    if session.step:
        progress.advance(min(session.step, session.total_steps))
    session.model.train()
    window_start, window_samples, window_wait = time.perf_counter(), 0, 0.0
    while session.step < stop_at:
        data_epoch = session.step // data_epoch_steps
        session.sampler.set_position(data_epoch, session.step - data_epoch * data_epoch_steps)
        wait_start = time.perf_counter()
        for batch in session.loader:
            window_wait += time.perf_counter() - wait_start
            lr = session.scheduler.get_last_lr()[0]
            report = train_step(session, batch)
            session.step += 1
            window_samples += config.train.batch_size
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            rate = window_samples / elapsed
            progress.advance(1, loss=report["loss"], lr=lr, samples_s=rate)
            epoch = (session.step - 1) // session.steps_per_epoch
            if session.step % config.train.log_every == 0 or session.step == 1:
                session.metrics.append({"kind": "train", "step": session.step, "epoch": epoch, "lr": lr,
                                        "samples_per_s": rate, "data_wait": window_wait / elapsed, **report})
                window_start, window_samples, window_wait = time.perf_counter(), 0, 0.0
            if session.step % session.steps_per_epoch == 0:
                end_of_epoch(session, epoch)
            if session.step % config.train.checkpoint_every == 0 or session.step == stop_at:
                if info.is_main:
                    save_checkpoint(config.out_dir / LAST_CHECKPOINT, snapshot(session))
            if session.step >= stop_at:
                break
            wait_start = time.perf_counter()
    completed = session.step >= session.total_steps
    if info.is_main:
        write_outputs(session, completed)
    barrier(info)
    final = next((row for row in reversed(session.metrics) if row["kind"] == "val"), {})
    metrics = {key: value for key, value in final.items() if isinstance(value, (int, float))}
    return PretrainResult(stage="pretrain", output_dir=config.out_dir, items=session.plan.items,
                          final_metrics=metrics, completed=completed)


def end_of_epoch(session: Session, epoch: int) -> None:
    """Validation retrieval on the main rank (others wait), recorded as a metrics row."""
    if session.info.is_main and session.val_set is not None:
        metrics = validate(session.model, session.val_set, session.text_embeddings, session.grounded,
                           session.device, max(1, session.sampler.local_batch), session.autocast)
        session.metrics.append({"kind": "val", "step": session.step, "epoch": epoch, **metrics})
        write_metrics_csv(session.config.out_dir, session.metrics)
    barrier(session.info)


def write_outputs(session: Session, completed: bool) -> None:
    """config.json, metrics.csv, loss.png, final.pt (when complete) and manifest.json."""
    out_dir = session.config.out_dir
    write_config_json(out_dir, session.run_config.to_dict())
    write_metrics_csv(out_dir, session.metrics)
    outputs = ["config.json", "metrics.csv", LAST_CHECKPOINT]
    if any(row["kind"] == "train" for row in session.metrics):
        plot_metrics(out_dir, session.metrics)
        outputs.append("loss.png")
    if completed:
        save_checkpoint(out_dir / FINAL_CHECKPOINT, snapshot(session))
        outputs.append(FINAL_CHECKPOINT)
    final = next((row for row in reversed(session.metrics) if row["kind"] == "val"), None)
    manifest_config = {**session.run_config.to_dict(), "device": str(session.device), "world_size": session.info.world_size}
    write_manifest(out_dir, "pretrain", manifest_config, session.plan.items,
                   package_versions("torch", "monai", "numpy"),
                   extra={"outputs": outputs, "completed": completed, "step": session.step,
                          "total_steps": session.total_steps, "final_validation": final})
