"""Model, presets and factory: mask pooling, normalisation, temperature, config validation."""
from __future__ import annotations

import math

import pytest
import torch

from stages.common.errors import SetupError
from stages.pretrain.factory import build_model, list_presets, load_preset
from stages.pretrain.model import masked_average, masked_histogram, masked_max


def tiny_config(encoder: str = "cnn", size: int = 32) -> dict:
    """The tiny preset with crop density features, so a test can call the model on images alone."""
    model = load_preset("tiny", encoder)["model"]
    return {**model, "input_size": [size, size, size], "density_bins": 16, "density_source": "crop"}


def test_masked_average_uses_only_voxels_inside_the_mask():
    features = torch.zeros(1, 2, 4, 4, 4)
    features[:, 0, :2] = 3.0  # channel 0 is 3 in the first half along x, 0 elsewhere
    features[:, 1] = -1.0
    mask = torch.zeros(1, 1, 16, 16, 16, dtype=torch.bool)
    mask[:, :, :8] = True  # the first half at input resolution = feature cells x < 2
    assert torch.allclose(masked_average(features, mask), torch.tensor([[3.0, -1.0]]))
    assert torch.allclose(masked_average(features, None), torch.tensor([[1.5, -1.0]]))


def test_masked_max_sees_a_focal_response_the_average_dilutes():
    """A lesion lighting up one feature cell of a large organ: the mean barely moves, the max does."""
    features = torch.zeros(1, 1, 8, 8, 8)
    features[0, 0, 2, 3, 4] = 10.0  # the lesion's cell, inside the organ
    features[0, 0, 7, 7, 7] = 99.0  # outside the organ: must not count
    mask = torch.zeros(1, 1, 16, 16, 16, dtype=torch.bool)
    mask[:, :, :12, :12, :12] = True
    assert float(masked_average(features, mask)) < 0.1
    assert float(masked_max(features, mask)) == 10.0
    assert float(masked_max(features, None)) == 99.0


def test_mean_max_pooling_feeds_both_statistics_to_the_projection():
    model = build_model({**tiny_config(), "pooling": "mean_max"}, text_dim=10).eval()
    assert model.image_projection.in_features == 2 * model.encoder.out_channels
    with torch.no_grad():
        embedding = model.encode_image(torch.rand(2, 1, 32, 32, 32), torch.ones(2, 1, 32, 32, 32, dtype=torch.bool),
                                       torch.zeros(2, 3))
    assert torch.allclose(embedding.norm(dim=1), torch.ones(2), atol=1e-5)
    with pytest.raises(SetupError, match="pooling"):
        build_model({**tiny_config(), "pooling": "median"}, text_dim=10)


def test_masked_average_keeps_an_organ_smaller_than_a_feature_cell():
    features = torch.arange(8.0).reshape(1, 1, 2, 2, 2)
    mask = torch.zeros(1, 1, 8, 8, 8, dtype=torch.bool)
    mask[0, 0, 5, 6, 1] = True  # one voxel inside feature cell (1, 1, 0)
    assert float(masked_average(features, mask)) == float(features[0, 0, 1, 1, 0])


@pytest.mark.parametrize("encoder", ["cnn", "vit"])
def test_embeddings_are_unit_length_and_depend_on_the_mask(encoder):
    """Also: a whole volume larger than the working size goes through the same encoder."""
    torch.manual_seed(0)
    model = build_model(tiny_config(encoder), text_dim=10).eval()
    image = torch.rand(2, 1, 32, 32, 32)
    left = torch.zeros(2, 1, 32, 32, 32, dtype=torch.bool)
    left[:, :, :12] = True
    right = torch.zeros_like(left)
    right[:, :, 20:] = True
    position = torch.zeros(2, 3)
    with torch.no_grad():
        organ_left = model.encode_image(image, left, position)
        organ_right = model.encode_image(image, right, position)
        texts = model.encode_text(torch.randn(3, 10))
    assert organ_left.shape == (2, load_preset("tiny", encoder)["model"]["embed_dim"])
    assert torch.allclose(organ_left.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(texts.norm(dim=1), torch.ones(3), atol=1e-5)
    assert (organ_left - organ_right).abs().max() > 1e-3
    with torch.no_grad():
        whole = model.encode_image(torch.rand(1, 1, 48, 48, 48), None, torch.zeros(1, 3))
    assert whole.shape == (1, organ_left.shape[1])


def test_position_tells_mirror_image_crops_apart():
    """A left and a right kidney crop can look the same; their centres in the scan differ."""
    torch.manual_seed(0)
    model = build_model(tiny_config(), text_dim=10).eval()
    image, mask = torch.rand(1, 1, 32, 32, 32).expand(2, -1, -1, -1, -1), torch.ones(2, 1, 32, 32, 32, dtype=torch.bool)
    position = torch.tensor([[-0.2, 0.0, 0.1], [0.2, 0.0, 0.1]])
    with torch.no_grad():
        left, right = model.encode_image(image, mask, position)
    assert (left - right).abs().max() > 1e-3
    with pytest.raises(ValueError, match="positions"):
        model.encode_image(image, mask)


def test_masked_histogram_counts_the_organ_voxels_per_intensity_bin():
    image = torch.zeros(1, 1, 4, 4, 4)
    image[..., :2] = 1.0  # half the volume at the window top (bone, stones), half at the bottom (air)
    image[0, 0, 0, 0, 2] = 0.5  # one voxel exactly at a middle bin centre (5 bins: 0, .25, .5, .75, 1)
    fractions = 10 ** ((masked_histogram(image, None, 5) - 1.0) * 4.0) - 1e-4
    assert fractions.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert fractions[0].tolist() == pytest.approx([31 / 64, 0.0, 1 / 64, 0.0, 0.5], abs=1e-5)
    organ = torch.zeros(1, 1, 4, 4, 4, dtype=torch.bool)
    organ[..., 2:] = True  # only the dark half and the middle voxel
    inside = 10 ** ((masked_histogram(image, organ, 5) - 1.0) * 4.0) - 1e-4
    assert inside[0].tolist() == pytest.approx([31 / 32, 0.0, 1 / 32, 0.0, 0.0], abs=1e-5)


def test_density_features_tell_a_darker_organ_apart_despite_instance_norm():
    """Emphysema and steatosis change an organ's HU; instance norm alone would divide that out."""
    torch.manual_seed(0)
    texture = torch.rand(1, 1, 32, 32, 32) * 0.2
    image = torch.cat([texture + 0.3, texture + 0.25])  # same texture, one 75 HU darker (1500 HU window)
    mask, position = torch.ones(2, 1, 32, 32, 32, dtype=torch.bool), torch.zeros(2, 3)
    plain = build_model({**tiny_config(), "density_bins": 0}, text_dim=10).eval()
    dense = build_model({**tiny_config(), "density_bins": 16, "density_source": "crop"}, text_dim=10).eval()
    with torch.no_grad():
        plain_gap = (plain.encode_image(image, mask, position)[0] - plain.encode_image(image, mask, position)[1]).abs().max()
        dense_gap = (dense.encode_image(image, mask, position)[0] - dense.encode_image(image, mask, position)[1]).abs().max()
    assert dense_gap > 10 * plain_gap
    with pytest.raises(SetupError, match="density_bins"):
        build_model({**tiny_config(), "density_bins": 1}, text_dim=10)


def test_scan_density_shows_a_few_calcified_voxels_the_crop_cannot():
    """``density_source: scan``: the cache's native-voxel histogram, not the crop's, feeds the
    density MLP; 0.1 % of an aorta above 1000 HU (a plaque) changes the embedding."""
    torch.manual_seed(0)
    model = build_model({**tiny_config(), "density_bins": 8, "density_source": "scan"}, text_dim=10).eval()
    image = torch.rand(1, 1, 32, 32, 32).expand(2, -1, -1, -1, -1)
    mask, position = torch.ones(2, 1, 32, 32, 32, dtype=torch.bool), torch.zeros(2, 3)
    density = torch.zeros(2, 8)
    density[:, 3] = 1.0
    density[1, 3], density[1, 7] = 0.999, 0.001
    with torch.no_grad():
        plain, plaque = model.encode_image(image, mask, position, density)
    assert (plain - plaque).abs().max() > 1e-3
    with pytest.raises(ValueError, match="density histograms"):
        model.encode_image(image, mask, position)
    with pytest.raises(SetupError, match="density_source"):
        build_model({**tiny_config(), "density_source": "report"}, text_dim=10)


def test_config_without_position_key_builds_a_position_free_model():
    """Checkpoints written before ``position_features`` existed still load."""
    config = tiny_config()
    config.pop("position_features")
    config.pop("pooling", None)
    config.pop("density_bins", None)
    config.pop("density_source", None)
    model = build_model(config, text_dim=10).eval()
    assert not model.uses_position and model.pooling == "mean" and model.density_encoder is None
    with torch.no_grad():
        assert model.encode_image(torch.rand(1, 1, 32, 32, 32), None).shape[0] == 1
        assert model.encode_image(torch.rand(1, 1, 32, 32, 32), None, None, torch.ones(1, 32)).shape[0] == 1


def test_temperature_starts_at_0_07_and_is_clamped():
    model = build_model(tiny_config(), text_dim=8)
    assert math.isclose(float(model.logit_scale.detach()), 1 / 0.07, rel_tol=1e-5)
    with torch.no_grad():
        model.log_logit_scale.fill_(20.0)
    assert math.isclose(float(model.logit_scale.detach()), 1 / 0.01, rel_tol=1e-5)
    with torch.no_grad():
        model.log_logit_scale.fill_(-5.0)
    assert math.isclose(float(model.logit_scale.detach()), 1 / 0.5, rel_tol=1e-5)


def test_every_preset_builds():
    assert set(list_presets()) >= {"cnn_tiny", "cnn_base", "vit_tiny", "vit_base"}
    for name in list_presets():
        encoder, size = name.split("_", 1)
        model_cfg = {**load_preset(size, encoder)["model"], "input_size": [64, 64, 64]}
        assert build_model(model_cfg, text_dim=384).encode_text(torch.zeros(1, 384)).shape[0] == 1


def test_bad_model_configs_are_refused_with_the_reason():
    with pytest.raises(SetupError, match="unknown keys \\['depth'\\]"):
        build_model({**tiny_config(), "depth": 3}, text_dim=8)
    with pytest.raises(SetupError, match="missing keys \\['filters'\\]"):
        build_model({k: v for k, v in tiny_config().items() if k != "filters"}, text_dim=8)
    with pytest.raises(SetupError, match="encoder must be one of"):
        build_model({**tiny_config(), "encoder": "resnet"}, text_dim=8)
    with pytest.raises(SetupError, match="not divisible by patch size"):
        build_model({**tiny_config("vit", size=38), "working_size": None}, text_dim=8)
    with pytest.raises(SetupError, match="working_size 64"):
        build_model({**tiny_config(), "working_size": 64}, text_dim=8)
    with pytest.raises(SetupError, match="neither a preset"):
        load_preset("huge", "cnn")


def test_global_mode_takes_the_presets_own_global_settings(tmp_path):
    """A preset's ``train_global`` is the baseline's own best (chosen on validation); flags still win."""
    import json

    from stages.pretrain.config import make_config

    preset = {**load_preset("tiny", "cnn")}
    path = tmp_path / "preset.json"
    path.write_text(json.dumps({"model": preset["model"], "train": {"epochs": 8, "lr": 0.002},
                                "train_global": {"epochs": 2, "lr": 0.0005}}))
    grounded = make_config(tmp_path, tmp_path / "g", preset=str(path))
    plain = make_config(tmp_path, tmp_path / "b", mode="global", preset=str(path))
    chosen = make_config(tmp_path, tmp_path / "c", mode="global", preset=str(path), epochs=3)
    assert (grounded.train.epochs, grounded.train.lr) == (8, 0.002)
    assert (plain.train.epochs, plain.train.lr) == (2, 0.0005)
    assert (chosen.train.epochs, chosen.train.lr) == (3, 0.0005)
    path.write_text(json.dumps({"model": preset["model"], "train_global": {"epoch": 2}}))
    with pytest.raises(SetupError, match="unknown training settings \\['epoch'\\]"):
        make_config(tmp_path, tmp_path / "d", mode="global", preset=str(path))
