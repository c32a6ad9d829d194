"""``ctglip pretrain`` CLI: exit codes, messages, and every option mapping to a config field."""
from __future__ import annotations

import inspect
import json
from dataclasses import fields

from typer.testing import CliRunner

from ctglip_cli import pretrain as pretrain_cli
from ctglip_cli.main import app
from stages.pretrain.config import PretrainConfig, TrainConfig, make_config
from test_pretrain_run import FAST

CLI_ONLY = {"cache_dir": "cache_dir", "output": "out_dir", "config": "preset", "compile_model": "compile"}


def test_every_option_maps_to_a_config_field():
    config_fields = {f.name for f in fields(PretrainConfig)} | {f.name for f in fields(TrainConfig)}
    factory_arguments = set(inspect.signature(make_config).parameters)
    for name in inspect.signature(pretrain_cli.command).parameters:
        target = CLI_ONLY.get(name, name)
        assert target in config_fields | factory_arguments, f"--{name} maps to nothing"


def test_cli_trains_stops_and_resumes(tiny_cache_dir, tmp_path):
    preset = tmp_path / "fast.json"
    preset.write_text(json.dumps(FAST), encoding="utf-8")
    out = tmp_path / "run"
    base = ["pretrain", str(tiny_cache_dir), "-o", str(out), "--config", str(preset), "--device", "cpu",
            "--threads", "1"]
    stopped = CliRunner().invoke(app, [*base, "--stop-after-steps", "2"])
    assert stopped.exit_code == 0, stopped.output
    assert "continue with --resume" in stopped.output and not (out / "final.pt").exists()
    again = CliRunner().invoke(app, base)
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = CliRunner().invoke(app, [*base, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "recall_at_1=" in resumed.output and (out / "final.pt").is_file()


def test_cli_refuses_a_folder_that_is_not_a_cache(tmp_path):
    result = CliRunner().invoke(app, ["pretrain", str(tmp_path), "-o", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 2
    assert "ctglip cache" in result.output


def test_cli_refuses_bad_settings(tmp_path):
    for options, message in ((["--mode", "local"], "mode must be one of"),
                             (["--config", "huge"], "neither a preset"),
                             (["--encoder", "resnet"], "encoder must be one of"),
                             (["--lr", "-1"], "lr must be positive"),
                             (["--flip-axes", "x"], "--flip-axes: expected comma-separated axes"),
                             (["--flip-axes", "0,5"], "flip_axes must be distinct volume axes"),
                             (["--shift-voxels", "-2"], "shift_voxels must be >= 0")):
        result = CliRunner().invoke(app, ["pretrain", str(tmp_path), "-o", str(tmp_path / "run"), *options])
        assert result.exit_code == 2 and message in result.output, (options, result.output)
