"""One ``--device`` reader for every stage."""
from __future__ import annotations

import pytest
import torch

from stages.common.device import check_device_name, resolve_device
from stages.common.errors import SetupError
from stages.pretrain.config import make_config
from stages.segment import SegmentConfig
from stages.zeroshot import ZeroshotConfig


def test_names_are_checked_without_a_device(tmp_path):
    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:3", "mps"):
        assert check_device_name(name) == name
    for name in ("gpu", "cuda:", "cuda:x", "CPU", "", "cuda:0,1"):
        with pytest.raises(SetupError, match="use auto, cpu, cuda, cuda:N or mps"):
            check_device_name(name)
    for build in (lambda: SegmentConfig(tmp_path, tmp_path / "o", device="gpu"),
                  lambda: ZeroshotConfig(tmp_path / "c.pt", tmp_path / "o", cache_dir=tmp_path, device="gpu"),
                  lambda: make_config(tmp_path, tmp_path / "o", device="gpu")):
        with pytest.raises(SetupError, match="unknown device 'gpu'"):
            build()


def test_resolution_matches_what_torch_sees():
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)
        count = torch.cuda.device_count()
        assert resolve_device(f"cuda:{count - 1}") == torch.device("cuda", count - 1)
        assert resolve_device("cuda", local_rank=count - 1) == torch.device("cuda", count - 1)
        with pytest.raises(SetupError, match=f"only {count} GPU"):
            resolve_device(f"cuda:{count}")
        with pytest.raises(SetupError, match="under torchrun"):
            resolve_device("cuda:0", local_rank=0)
    else:
        assert resolve_device("auto") == torch.device("cpu")
        for name in ("cuda", "cuda:1"):
            with pytest.raises(SetupError, match="torch sees no CUDA GPU"):
                resolve_device(name)
    if not torch.backends.mps.is_available():
        with pytest.raises(SetupError, match="no Apple GPU"):
            resolve_device("mps")
