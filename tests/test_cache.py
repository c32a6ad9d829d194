"""``ctglip cache`` through the real stages on a small synthetic dataset."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctglip_cli.main import app
from stages.cache import CacheConfig, PreprocessConfig, load_cache, run
from stages.common.anatomy import organ_units
from stages.common.errors import SetupError
from stages.parse_reports import read_organ_texts


def _config(root: Path, out: Path, **changes) -> CacheConfig:
    preprocess = PreprocessConfig(spacing=(3.5, 3.5, 3.5), crop_size=(32, 32, 32), volume_size=(32, 32, 32))
    config = CacheConfig(ct_dir=root / "ct", masks_dir=root / "segmentations", reports_dir=root / "parsed",
                         out_dir=out, preprocess=preprocess)
    return replace(config, **changes)


def test_load_cache_gives_documented_samples(tiny_pipeline_dir):
    cache = load_cache(tiny_pipeline_dir / "cache")
    assert len(cache) == len(cache.index) > 10 * 10
    sample = cache[0]
    assert sample["image"].dtype == np.float32 and sample["image"].shape == (32, 32, 32)
    assert 0.0 <= sample["image"].min() and sample["image"].max() <= 1.0
    assert sample["mask"].dtype == bool and sample["mask"].any()
    for key in ("scan_id", "organ", "text", "abnormal", "complete", "uncertain", "abnormalities", "text_id"):
        assert key in sample
    assert cache.texts[sample["text_id"]] == sample["text"]
    norms = np.linalg.norm(cache.text_embeddings, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)
    assert cache.text_embeddings.shape == (len(cache.texts), cache.text_encoder["dim"])
    assert cache.manifest["window"] == [-1150.0, 350.0]
    assert cache.preprocess.crop_size == (32, 32, 32)
    assert set(cache.organ_vocab) <= set(organ_units())
    with pytest.raises(IndexError):
        cache[len(cache)]


def test_texts_come_from_parsed_reports_or_the_normal_template(tiny_pipeline_dir):
    cache = load_cache(tiny_pipeline_dir / "cache")
    parsed = read_organ_texts(tiny_pipeline_dir / "parsed").set_index(["scan_id", "organ"])
    mentioned = normal = 0
    for i in range(len(cache)):
        sample = cache[i]
        key = (sample["scan_id"], sample["organ"])
        if key in parsed.index:
            row = parsed.loc[key]
            display = organ_units()[sample["organ"]].display_name
            assert sample["text"] == f"{display[0].upper()}{display[1:]}: {row['text']}"
            assert sample["abnormal"] == bool(row["abnormal"])
            assert sample["abnormalities"] == list(row["abnormalities"])
            mentioned += 1
        else:
            display = organ_units()[sample["organ"]].display_name
            assert sample["text"] == f"{display[0].upper()}{display[1:]} shows no significant abnormality."
            assert not sample["abnormal"]
            normal += 1
    assert mentioned > 20 and normal > 20
    abnormal = cache.index[cache.index["abnormal"]]
    assert len(abnormal) > 0
    for _, row in abnormal.iterrows():
        for phrase, text_id in zip(row["abnormalities"], row["abnormality_text_ids"]):
            assert cache.texts[text_id].endswith(f"with {phrase}.")


def test_a_sentence_about_both_lungs_gives_each_lung_its_own_text(tiny_pipeline_dir):
    """Bilateral sentences are grounded to both lungs; named by its unit, each lung's text differs,
    so the organ-text objective can tell left from right (the same for kidneys and adrenals)."""
    cache = load_cache(tiny_pipeline_dir / "cache")
    parsed = read_organ_texts(tiny_pipeline_dir / "parsed").set_index(["scan_id", "organ"])
    shared = 0
    for scan_id in cache.index["scan_id"].unique():
        rows = cache.index[cache.index["scan_id"] == scan_id].set_index("organ")
        for left, right in (("lung_left", "lung_right"), ("kidney_left", "kidney_right")):
            if {left, right} <= set(rows.index) and {(scan_id, left), (scan_id, right)} <= set(parsed.index):
                shared += parsed.loc[(scan_id, left), "text"] == parsed.loc[(scan_id, right), "text"]
                assert rows.at[left, "text_id"] != rows.at[right, "text_id"]
    assert shared > 0  # the reports do hold sentences about both sides


def test_samples_carry_the_organ_density_measured_on_native_voxels(tiny_pipeline_dir):
    cache = load_cache(tiny_pipeline_dir / "cache")
    lo, hi = cache.preprocess.density_range
    for i in (0, len(cache) // 2):
        density = cache[i]["density"]
        assert density.shape == (cache.preprocess.density_bins,) and density.min() >= 0
        assert density.sum() == pytest.approx(1.0, abs=1e-4)
    whole = load_cache(tiny_pipeline_dir / "cache", kind="volume")[0]
    volume = whole["density"]
    assert volume.sum() == pytest.approx(1.0, abs=1e-4)
    hu = np.asarray(nib.load(tiny_pipeline_dir / "ct" / f"{whole['scan_id']}.nii.gz").dataobj)
    air = float((hu < -900).mean())  # -1000 HU: 81 % in the bin at -1016 HU, the rest in the next one up
    assert 0.6 * air < volume[:2].sum() < air + 0.05


def test_global_text_can_be_the_raw_impression(tiny_pipeline_dir, tmp_path):
    root = tiny_pipeline_dir
    out = tmp_path / "cache"
    assert run(_config(root, out, global_text="impression")).exit_code == 0
    reports = pd.read_csv(root / "reports.csv").set_index("scan_id")
    volumes = load_cache(out, kind="volume")
    for i in range(len(volumes)):
        sample = volumes[i]
        assert sample["text"] == reports.at[sample["scan_id"], "impression"].strip()
    with pytest.raises(SetupError, match="--reports-table"):
        run(_config(root, tmp_path / "other", global_text="impression", reports_table=tmp_path / "gone.csv"))
    with pytest.raises(SetupError, match="global text"):
        _config(root, out, global_text="abstract")


def test_whole_volume_samples_for_the_global_baseline(tiny_pipeline_dir):
    volumes = load_cache(tiny_pipeline_dir / "cache", kind="volume")
    assert len(volumes) == 10
    sample = volumes[0]
    assert sample["image"].shape == (32, 32, 32) and sample["mask"].all()
    assert sample["organ"] == "volume" and len(sample["text"]) > 20


def test_rerun_skips_changed_config_is_refused_and_failures_are_recorded(tiny_pipeline_dir, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_pipeline_dir, root, ignore=shutil.ignore_patterns("cache"))
    out = tmp_path / "cache"
    first = run(_config(root, out))
    assert first.exit_code == 0 and first.counts()["ok"] == 10
    index = pd.read_parquet(out / "index.parquet")
    again = run(_config(root, out))
    assert again.counts() == {"ok": 0, "done-earlier": 10, "empty": 0, "failed": 0}
    pd.testing.assert_frame_equal(pd.read_parquet(out / "index.parquet"), index)
    with pytest.raises(SetupError, match="another config"):
        run(_config(root, out, preprocess=PreprocessConfig(spacing=(3.0, 3.0, 3.0), crop_size=(32, 32, 32))))
    # a scan without a mask and a mask corrupted after segmentation: recorded, others continue
    ct_files = sorted((root / "ct").glob("*.nii.gz"))
    shutil.copy(ct_files[0], root / "ct" / "orphan.nii.gz")
    (root / "segmentations" / ct_files[1].name).write_bytes(b"\x1f\x8b broken")
    broken = run(_config(root, tmp_path / "cache2"))
    status = {item.item_id: item for item in broken.items}
    assert broken.exit_code == 1
    assert "no ok mask" in status["orphan"].error
    assert ct_files[1].name in status[ct_files[1].name[:-7]].error
    assert broken.counts()["ok"] == 9
    manifest = json.loads((tmp_path / "cache2" / "manifest.json").read_text())
    assert manifest["items"]["orphan"]["status"] == "failed"
    assert not list((tmp_path / "cache2" / "shards").glob(".*")), "temp shard folders left behind"


def test_parallel_workers_give_the_same_cache(tiny_pipeline_dir, tmp_path):
    run(_config(tiny_pipeline_dir, tmp_path / "parallel", workers=2))
    serial, parallel = load_cache(tiny_pipeline_dir / "cache"), load_cache(tmp_path / "parallel")
    pd.testing.assert_frame_equal(serial.index, parallel.index)
    for i in (0, len(serial) // 2, len(serial) - 1):
        np.testing.assert_array_equal(serial[i]["image"], parallel[i]["image"])
        np.testing.assert_array_equal(serial[i]["mask"], parallel[i]["mask"])


def test_cli_needs_parse_reports_output(tiny_pipeline_dir, tmp_path):
    result = CliRunner().invoke(app, ["cache", "--ct-dir", str(tiny_pipeline_dir / "ct"), "--masks-dir",
                                      str(tiny_pipeline_dir / "segmentations"), "--reports-dir", str(tmp_path),
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "ctglip parse-reports" in result.output
    bad_window = CliRunner().invoke(app, ["cache", "--ct-dir", "x", "--masks-dir", "y", "--reports-dir", "z",
                                          "-o", str(tmp_path / "o"), "--window", "350", "-1150"])
    assert bad_window.exit_code == 2 and "LO < HI" in bad_window.output
