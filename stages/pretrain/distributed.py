"""Distributed helpers (torchrun DDP: NCCL on GPU, gloo on CPU); nothing happens on import.

Ranks come from torchrun's environment variables. The contrastive losses gather
embeddings from every rank *with* gradients (:func:`all_gather_with_grad`), so the
negatives are the whole global batch.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from stages.common import device as devices
from stages.common.errors import SetupError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (one process = one device)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def world_info_from_env(env: Mapping[str, str] | None = None) -> DistInfo:
    """Rank, local rank and world size as set by torchrun (single process when unset)."""
    env = os.environ if env is None else env
    try:
        info = DistInfo(rank=int(env.get("RANK", "0")), local_rank=int(env.get("LOCAL_RANK", "0")),
                        world_size=int(env.get("WORLD_SIZE", "1")))
    except ValueError as error:
        raise SetupError(f"RANK / LOCAL_RANK / WORLD_SIZE must be integers ({error})") from error
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise SetupError(f"inconsistent torchrun environment: RANK={info.rank}, WORLD_SIZE={info.world_size}")
    return info


def resolve_device(requested: str, info: DistInfo) -> torch.device:
    """:func:`stages.common.device.resolve_device`; under torchrun each rank takes GPU ``local_rank``."""
    return devices.resolve_device(requested, info.local_rank if info.is_distributed else None)


def init_process_group(info: DistInfo, device: torch.device) -> None:
    """Join the torchrun job (NCCL for CUDA, gloo for CPU); a no-op for one process."""
    if not info.is_distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                            rank=info.rank, world_size=info.world_size)


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.is_distributed:
        dist.barrier()


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient for this rank's slice.

    Implemented with all-reduce rather than ``torch.distributed.nn.all_gather`` so it
    needs only collectives that both gloo and NCCL support.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world_size, rank = dist.get_world_size(), dist.get_rank()
        ctx.rank, ctx.rows = rank, tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Rows of every rank concatenated in rank order, differentiable (equal rows per rank)."""
    return _GatherWithGrad.apply(tensor)


def all_gather_no_grad(tensor: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rows of every rank in rank order; only this rank's own slot carries gradients."""
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor.detach().contiguous())
    parts[rank] = tensor
    return torch.cat(parts, dim=0)


def all_reduce_sum(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """Sum of ``tensor`` over ranks (no gradient); the tensor itself for one process."""
    if world_size == 1:
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def broadcast_object(value: object, info: DistInfo) -> object:
    """Rank 0's ``value`` on every rank (e.g. a resume decision every rank must share)."""
    if not info.is_distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
