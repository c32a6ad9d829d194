"""A real 2-process gloo DDP step equals one process on the same global batch (tolerance 1e-5).

Covers the gathered contrastive loss (soft targets across ranks), the abnormality-dictionary
and organ-name terms (global-count normalisation), ``local_loss`` and both encoder families.
"""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from stages.pretrain.config import TrainConfig
from stages.pretrain.data import CandidateTable
from stages.pretrain.distributed import all_reduce_sum
from stages.pretrain.factory import build_model
from stages.pretrain.objective import Objective

WORLD_SIZE = 2
GLOBAL_BATCH = 8
TEXT_DIM = 12
TOLERANCE = 1e-5
COMMON = {"input_size": [16, 16, 16], "working_size": None, "position_features": True, "embed_dim": 16, "image_hidden": 0, "text_hidden": 24,
          "init_temperature": 0.07, "temperature_range": [0.01, 0.5]}
VARIANTS = {
    "cnn": ({**COMMON, "encoder": "cnn", "filters": [4, 8, 8], "strides": [2, 2, 2], "feature_dim": 8},
            TrainConfig(organ_name_weight=0.5)),
    "cnn_local_loss": ({**COMMON, "encoder": "cnn", "filters": [4, 8, 8], "strides": [2, 2, 2], "feature_dim": 8},
                       TrainConfig(local_loss=True)),
    "cnn_scan_density": ({**COMMON, "encoder": "cnn", "filters": [4, 8, 8], "strides": [2, 2, 2], "feature_dim": 8,
                          "density_bins": 6, "density_source": "scan"}, TrainConfig()),
    "vit": ({**COMMON, "encoder": "vit", "patch_size": 4, "hidden_size": 16, "num_layers": 1, "num_heads": 2},
            TrainConfig()),
}


def global_batch() -> tuple[dict[str, torch.Tensor], torch.Tensor, CandidateTable]:
    """8 samples of 3 organs; text ids repeat across the two ranks' halves; one uncertain sample."""
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(GLOBAL_BATCH, 1, 16, 16, 16, generator=generator)
    mask = torch.zeros(GLOBAL_BATCH, 1, 16, 16, 16, dtype=torch.bool)
    for i in range(GLOBAL_BATCH):
        mask[i, 0, i % 5:i % 5 + 8, 2:12, 3 + i % 3:13] = True
    organ_index = torch.tensor([0, 1, 2, 0, 1, 0, 2, 1])
    text_id = torch.tensor([0, 1, 2, 6, 1, 0, 2, 7])  # 0, 1, 2: normal templates shared across ranks
    candidates = CandidateTable(text_ids=[0, 1, 2, 3, 4, 5, 8, 9, 10],
                                organ_index=np.array([[0, 3, 4], [1, 5, -1], [2, -1, -1]]),
                                name_index=np.array([6, 7, 8]))
    targets = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 1], [1, 0, 0], [1, 0, 0], [1, 0, 0],
                            [0, 0, 0]], dtype=torch.float32)  # sample 7 is uncertain: no abnormality target
    texts = F.normalize(torch.randn(11, TEXT_DIM, generator=generator), dim=1)
    position = torch.rand(GLOBAL_BATCH, 3, generator=generator) - 0.5
    density = torch.softmax(torch.randn(GLOBAL_BATCH, 6, generator=generator), dim=1)
    batch = {"image": image, "mask": mask, "position": position, "text_id": text_id, "organ_index": organ_index,
             "dictionary_targets": targets, "density": density}
    return batch, texts, candidates


def first_step(model_cfg: dict, train: TrainConfig, rank: int, world_size: int) -> dict:
    """Loss (mean over ranks) and parameter gradients after one backward pass."""
    batch, texts, candidates = global_batch()
    share = GLOBAL_BATCH // world_size
    local = {key: value[rank * share:(rank + 1) * share] for key, value in batch.items()}
    torch.manual_seed(0)
    model = build_model(model_cfg, TEXT_DIM)
    step_model = DistributedDataParallel(model) if world_size > 1 else model
    loss, terms, _ = Objective(train, texts, candidates, rank, world_size)(step_model, local)
    loss.backward()
    values = all_reduce_sum(torch.stack([loss.detach(), *[v.detach() for v in terms.values()]]), world_size)
    return {"losses": values / world_size, "terms": list(terms),
            "grads": {name: p.grad.detach().clone() for name, p in model.named_parameters()}}


def ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        results = {name: first_step(cfg, train, rank, world_size) for name, (cfg, train) in VARIANTS.items()}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_gloo_step_equals_one_process(tmp_path):
    mp.spawn(ddp_worker, args=(WORLD_SIZE, free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    for name, (cfg, train) in VARIANTS.items():
        single = first_step(cfg, train, rank=0, world_size=1)
        assert ranks[0][name]["terms"] == single["terms"]
        assert len(single["terms"]) == (3 if train.organ_name_weight else 2)
        for rank in ranks:
            assert torch.allclose(rank[name]["losses"], single["losses"], atol=TOLERANCE, rtol=0), name
            for param, grad in single["grads"].items():
                difference = (rank[name]["grads"][param] - grad).abs().max()
                assert difference <= TOLERANCE, f"{name}: {param} differs by {difference}"
        total_grad = sum(float(grad.abs().sum()) for grad in single["grads"].values())
        assert total_grad > 1e-3, f"{name}: gradients vanish, the comparison would be empty"


def test_gather_and_device_helpers_on_one_process():
    from stages.common.errors import SetupError
    from stages.pretrain.distributed import resolve_device, world_info_from_env

    info = world_info_from_env({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    assert (info.rank, info.world_size, info.is_main, info.is_distributed) == (1, 2, False, True)
    assert world_info_from_env({}).is_main
    assert resolve_device("cpu", info).type == "cpu"
    for bad in ({"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "x"}):
        try:
            world_info_from_env(bad)
        except SetupError as error:
            assert "RANK" in str(error) or "rank" in str(error).lower()
        else:
            raise AssertionError(f"{bad} should be refused")
