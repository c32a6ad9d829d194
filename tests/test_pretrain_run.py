"""End-to-end ``stages.pretrain.run`` on the tiny synthetic cache (real stages, real files).

A very small CNN keeps every run to a few seconds; what is checked is the machinery:
self-contained checkpoints, kill-and-resume determinism, run-folder rules, global mode,
and a 2-process gloo run whose first loss equals the one-process run's.
"""
from __future__ import annotations

import json
from dataclasses import replace
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from stages.cache import load_cache
from stages.common.errors import SetupError
from stages.common.manifest import read_manifest
from stages.pretrain import load_checkpoint, make_config, run
from stages.pretrain.io import read_metrics_csv
from stages.pretrain.checkpoint import read_checkpoint
from stages.pretrain.session import config_differences

FAST = {
    "model": {"encoder": "cnn", "position_features": True, "working_size": 32, "filters": [4, 8, 8],
              "strides": [2, 2, 2], "feature_dim": 8, "embed_dim": 16, "image_hidden": 0, "text_hidden": 16, "init_temperature": 0.07,
              "temperature_range": [0.01, 0.5], "density_bins": 8, "density_source": "scan"},
    "train": {"epochs": 2, "batch_size": 8, "lr": 0.003, "checkpoint_every": 2, "log_every": 1,
              "val_fraction": 0.25, "seed": 5},
}


@pytest.fixture()
def fast_config(tmp_path) -> Path:
    path = tmp_path / "fast.json"
    path.write_text(json.dumps(FAST), encoding="utf-8")
    return path


def train(cache: Path, out: Path, preset: Path, **overrides):
    """One run on CPU with one thread (fast and stable on a machine shared with other jobs)."""
    return run(make_config(cache, out, preset=str(preset), device="cpu", threads=1, **overrides))


def test_grounded_run_writes_self_contained_checkpoints(tiny_cache_dir, tmp_path, fast_config):
    out = tmp_path / "run"
    result = train(tiny_cache_dir, out, fast_config)
    assert result.completed and result.exit_code == 0 and result.counts()["ok"] > 0
    for name in ("last.pt", "final.pt", "config.json", "metrics.csv", "loss.png", "manifest.json"):
        assert (out / name).is_file(), name
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    cache = load_cache(tiny_cache_dir)
    checkpoint = torch.load(out / "final.pt", map_location="cpu", weights_only=True)
    assert checkpoint["format"] == "ctglip.checkpoint/2" and checkpoint["step"] == checkpoint["total_steps"] > 0
    assert checkpoint["finished"] and checkpoint["epochs_done"] == checkpoint["epochs_planned"] == 2
    config = checkpoint["config"]
    assert config["mode"] == "grounded" and config["model"]["encoder"] == "cnn"
    assert config["model"]["input_size"] == list(cache.preprocess.crop_size)
    assert config["cache"]["preprocess"] == cache.preprocess.to_dict()
    assert config["text_encoder"]["dim"] == cache.text_embeddings.shape[1]
    assert config["text_encoder"]["id"] == cache.text_encoder["id"]
    assert config["organ_vocab"] == cache.organ_vocab
    assert config["abnormality_dictionary"] == cache.abnormality_dictionary
    assert json.loads((out / "config.json").read_text()) == config

    model, loaded = load_checkpoint(out / "final.pt")
    assert not model.training and loaded.config.to_dict() == config and loaded.finished
    sample = cache[0]
    image = torch.from_numpy(sample["image"])[None, None]
    mask = torch.from_numpy(sample["mask"])[None, None]
    position = torch.from_numpy(sample["position"])[None]
    assert model.uses_position and loaded.config.model["position_features"]
    with torch.no_grad():
        embedding = model.encode_image(image, mask, position, torch.from_numpy(sample["density"])[None])
        text = model.encode_text(torch.from_numpy(cache.text_embeddings[:3]))
    assert embedding.shape == (1, 16) and text.shape == (3, 16)
    assert torch.allclose(embedding.norm(dim=1), torch.ones(1), atol=1e-5)

    manifest = read_manifest(out, "pretrain")
    assert manifest["completed"] and manifest["step"] == manifest["total_steps"] == checkpoint["step"]
    rows = read_metrics_csv(out)
    val = [row for row in rows if row["kind"] == "val"]
    assert [row["epoch"] for row in val] == [0, 1]
    for row in val:
        assert 0.0 <= row["recall_at_1"] <= row["recall_at_5"] <= 1.0
        assert row["chance_at_1"] == pytest.approx(1.0 / row["val_texts"], rel=1e-4)
    assert result.final_metrics["recall_at_1"] == pytest.approx(val[-1]["recall_at_1"], rel=1e-4)
    train_rows = [row for row in rows if row["kind"] == "train"]
    assert len(train_rows) == checkpoint["step"] and all(row["abnormality"] is not None for row in train_rows)


def test_resume_after_a_stop_reaches_the_uninterrupted_weights(tiny_cache_dir, tmp_path, fast_config):
    augmented = {"shift_voxels": 2, "flip_axes": (0,)}  # spatial augmentation must replay exactly too
    straight = train(tiny_cache_dir, tmp_path / "straight", fast_config, **augmented)
    stopped = train(tiny_cache_dir, tmp_path / "resumed", fast_config, stop_after_steps=3, **augmented)
    assert not stopped.completed and not (tmp_path / "resumed" / "final.pt").exists()
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["step"] == 3
    resumed = train(tiny_cache_dir, tmp_path / "resumed", fast_config, resume=True, **augmented)
    assert straight.completed and resumed.completed
    first = torch.load(tmp_path / "straight" / "final.pt", weights_only=True)
    second = torch.load(tmp_path / "resumed" / "final.pt", weights_only=True)
    assert first["step"] == second["step"] > 3
    for key, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][key]), key
    for key, state in first["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg"], second["optimizer"]["state"][key]["exp_avg"])
    assert first["scheduler"] == second["scheduler"]
    val = [[row["recall_at_1"] for row in read_metrics_csv(tmp_path / name) if row["kind"] == "val"]
           for name in ("straight", "resumed")]
    assert val[0] == val[1]


def test_run_folder_rules(tiny_cache_dir, tmp_path, fast_config):
    out = tmp_path / "run"
    with pytest.raises(SetupError, match="nothing to resume"):
        train(tiny_cache_dir, out, fast_config, resume=True)
    train(tiny_cache_dir, out, fast_config, stop_after_steps=1)
    with pytest.raises(SetupError, match="--resume"):
        train(tiny_cache_dir, out, fast_config)
    with pytest.raises(SetupError, match="train.lr"):
        train(tiny_cache_dir, out, fast_config, resume=True, lr=0.1)
    stored = read_checkpoint(out / "last.pt").config
    older = replace(stored, train={k: v for k, v in stored.train.items() if k != "shift_voxels"})
    assert config_differences(older, stored) == []  # a setting added later compares as its default
    assert config_differences(older, replace(stored, train={**stored.train, "shift_voxels": 3})) == [
        "train.shift_voxels"]
    with pytest.raises(Exception, match="ctglip cache"):
        train(tmp_path / "not_a_cache", tmp_path / "other", fast_config)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((out / "last.pt").read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.pt: not a loadable checkpoint"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not a ctglip checkpoint"):
        load_checkpoint(foreign)


def test_global_mode_trains_on_whole_volumes_with_the_grounded_budget(tiny_cache_dir, tmp_path, fast_config):
    grounded = train(tiny_cache_dir, tmp_path / "grounded", fast_config, stop_after_steps=1)
    assert not grounded.completed
    result = train(tiny_cache_dir, tmp_path / "global", fast_config, mode="global", epochs=4, lr=0.01)
    checkpoint = torch.load(tmp_path / "global" / "final.pt", weights_only=True)
    cache = load_cache(tiny_cache_dir)
    assert checkpoint["config"]["mode"] == "global"
    assert checkpoint["config"]["model"]["input_size"] == list(cache.preprocess.volume_size)
    budget = read_manifest(tmp_path / "grounded", "pretrain")["total_steps"]
    assert checkpoint["step"] == 2 * budget  # 4 epochs here, 2 in the grounded config
    losses = [row["loss"] for row in read_metrics_csv(tmp_path / "global") if row["kind"] == "train"]
    assert sum(losses[-3:]) / 3 < losses[0]
    assert result.final_metrics["val_samples"] >= 1


def ddp_run(rank: int, world_size: int, port: int, cache: str, out: str, preset: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train(Path(cache), Path(out), Path(preset), stop_after_steps=1)


def test_two_process_gloo_run_starts_with_the_one_process_loss(tiny_cache_dir, tmp_path, fast_config):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(ddp_run, args=(2, port, str(tiny_cache_dir), str(tmp_path / "ddp"), str(fast_config)), nprocs=2)
    train(tiny_cache_dir, tmp_path / "single", fast_config, stop_after_steps=1)
    first = [read_metrics_csv(tmp_path / name)[0] for name in ("ddp", "single")]
    assert first[0]["step"] == first[1]["step"] == 1
    for term in ("loss", "organ_text", "abnormality"):
        assert first[0][term] == pytest.approx(first[1][term], abs=1e-5)
    assert read_manifest(tmp_path / "ddp", "pretrain")["config"]["world_size"] == 2
