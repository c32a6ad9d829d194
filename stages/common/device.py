"""One reading of ``--device`` for every stage: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

``auto`` takes CUDA when torch sees a GPU, else the CPU (never MPS, whose 3-D operators
are incomplete). Under torchrun each process takes GPU ``LOCAL_RANK``. Asking for a
device that is absent is a :class:`SetupError`, never a silent fall-back to the CPU.
Torch is imported only when a device is resolved, so checking a name stays cheap.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from stages.common.errors import SetupError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(auto|cpu|cuda|mps|cuda:\d+)$")


def check_device_name(name: str) -> str:
    """``name`` unchanged when it is a device ctglip understands; :class:`SetupError` otherwise."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise SetupError(f"unknown device {name!r}: use {DEVICE_HELP}")
    return name


def resolve_device(name: str, local_rank: int | None = None) -> "torch.device":
    """The torch device for ``name``; ``local_rank`` (torchrun) picks the GPU of this process."""
    import torch

    check_device_name(name)
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise SetupError("--device mps was asked for, but torch sees no Apple GPU (MPS)")
        return torch.device("mps")
    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SetupError(f"--device {name} was asked for, but torch sees no CUDA GPU "
                         f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
                         "use --device cpu or auto")
    count = torch.cuda.device_count()
    if name.startswith("cuda:"):
        if local_rank is not None:
            raise SetupError(f"--device {name}: under torchrun each process takes GPU LOCAL_RANK; "
                             "use --device cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES")
        index = int(name[5:])
    else:
        index = local_rank or 0
    if index >= count:
        raise SetupError(f"GPU {index} asked for (--device {name}"
                         f"{'' if local_rank is None else f', LOCAL_RANK {local_rank}'}), "
                         f"but only {count} GPU(s) are visible")
    return torch.device("cuda", index)
