"""``ctglip segment`` on the real TotalSegmentator example: import, validation, resume, weights check."""
from __future__ import annotations

import gzip
import json
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctglip_cli.main import app
from stages.common.anatomy import totalseg_class_map
from stages.common.ids import InvalidScanId, safe_child, validate_scan_id
from stages.common.outputs import STAGE_MARKER
from stages.segment import SegmentConfig, WeightsMissing, run, shard_files
from stages.segment.io import read_masks_dir


@pytest.fixture()
def example_dirs(tmp_path: Path, shared_example_dir: Path) -> dict[str, Path]:
    ct_dir, src = tmp_path / "ct", tmp_path / "src"
    ct_dir.mkdir()
    src.mkdir()
    shutil.copy(shared_example_dir / "example_ct_sm.nii.gz", ct_dir / "case1.nii.gz")
    shutil.copy(shared_example_dir / "example_seg.nii.gz", src / "case1.nii.gz")
    return {"ct": ct_dir, "src": src, "out": tmp_path / "masks", "seg": shared_example_dir / "example_seg.nii.gz"}


def test_import_multilabel_reproduces_labels_voxel_for_voxel(example_dirs):
    result = run(SegmentConfig(example_dirs["ct"], example_dirs["out"], engine="import",
                               import_from=example_dirs["src"]))
    assert result.exit_code == 0 and result.counts()["ok"] == 1
    written = nib.load(example_dirs["out"] / "case1.nii.gz")
    original = nib.load(example_dirs["seg"])
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), np.asanyarray(original.dataobj))
    np.testing.assert_allclose(written.affine, nib.load(example_dirs["ct"] / "case1.nii.gz").affine)
    assert written.get_data_dtype() == np.uint8
    manifest = pd.read_csv(example_dirs["out"] / "manifest.csv")
    assert list(manifest.columns[:5]) == ["scan_id", "status", "engine", "seconds", "error"]
    assert manifest.loc[0, "status"] == "ok" and manifest.loc[0, "engine"] == "import"
    assert set(read_masks_dir(example_dirs["out"])) == {"case1"}


def test_import_from_per_class_folder_matches_multilabel(example_dirs, tmp_path):
    seg = nib.load(example_dirs["seg"])
    labels = np.asanyarray(seg.dataobj)
    folder = tmp_path / "perclass" / "case1"
    folder.mkdir(parents=True)
    names = totalseg_class_map()
    for label_id in np.unique(labels[labels > 0]):
        binary = (labels == label_id).astype(np.uint8)
        nib.save(nib.Nifti1Image(binary, seg.affine), folder / f"{names[int(label_id)]}.nii.gz")
    result = run(SegmentConfig(example_dirs["ct"], tmp_path / "out_pc", engine="import",
                               import_from=tmp_path / "perclass"))
    assert result.counts()["ok"] == 1
    np.testing.assert_array_equal(np.asanyarray(nib.load(tmp_path / "out_pc" / "case1.nii.gz").dataobj), labels)


def test_bad_scans_fail_with_reasons_and_good_scan_still_succeeds(example_dirs):
    ct_dir, src = example_dirs["ct"], example_dirs["src"]
    seg = nib.load(example_dirs["seg"])
    shutil.copy(ct_dir / "case1.nii.gz", ct_dir / "moved.nii.gz")
    shifted = seg.affine.copy()
    shifted[0, 3] += 6.0
    nib.save(nib.Nifti1Image(np.asanyarray(seg.dataobj), shifted), src / "moved.nii.gz")
    shutil.copy(ct_dir / "case1.nii.gz", ct_dir / "cropped.nii.gz")
    nib.save(nib.Nifti1Image(np.asanyarray(seg.dataobj)[:, :, :20], seg.affine), src / "cropped.nii.gz")
    (ct_dir / "corrupt.nii.gz").write_bytes(gzip.compress(b"not a nifti file"))
    flat = nib.Nifti1Image(np.zeros((64, 64, 1), dtype=np.int16), np.eye(4))
    nib.save(flat, ct_dir / "flat.nii.gz")
    result = run(SegmentConfig(ct_dir, example_dirs["out"], engine="import", import_from=src))
    status = {item.item_id: item for item in result.items}
    assert status["case1"].status == "ok"
    assert "affine differs" in status["moved"].error and "moved.nii.gz" in status["moved"].error
    assert "shape (122, 101, 20)" in status["cropped"].error
    assert "corrupt.nii.gz" in status["corrupt"].error and "cannot read" in status["corrupt"].error
    assert "degenerate shape" in status["flat"].error
    assert result.exit_code == 1
    assert not (example_dirs["out"] / "moved.nii.gz").exists()
    left = [p for p in example_dirs["out"].iterdir() if p.name.startswith(".") and p.name != STAGE_MARKER]
    assert not left, "temp files left behind"


def test_unknown_label_ids_are_refused(example_dirs):
    seg = nib.load(example_dirs["seg"])
    data = np.asanyarray(seg.dataobj).copy()
    data[0, 0, 0] = 200
    nib.save(nib.Nifti1Image(data, seg.affine), example_dirs["src"] / "case1.nii.gz")
    result = run(SegmentConfig(example_dirs["ct"], example_dirs["out"], engine="import", import_from=example_dirs["src"]))
    assert result.items[0].status == "failed" and "[200]" in result.items[0].error


def test_resume_skips_done_scans_and_overwrite_redoes_them(example_dirs):
    config = SegmentConfig(example_dirs["ct"], example_dirs["out"], engine="import", import_from=example_dirs["src"])
    run(config)
    mtime = (example_dirs["out"] / "case1.nii.gz").stat().st_mtime_ns
    time.sleep(0.01)
    again = run(config)
    assert again.counts() == {"ok": 0, "done-earlier": 1, "empty": 0, "failed": 0}
    assert (example_dirs["out"] / "case1.nii.gz").stat().st_mtime_ns == mtime
    manifest = json.loads((example_dirs["out"] / "manifest.json").read_text())
    assert manifest["items"]["case1"]["status"] == "ok"
    redo = run(SegmentConfig(example_dirs["ct"], example_dirs["out"], engine="import",
                             import_from=example_dirs["src"], overwrite=True))
    assert redo.counts()["ok"] == 1


def test_ids_that_could_escape_the_output_folder_are_refused(tmp_path):
    for bad in ("../evil", "a/b", "..", "", "x\\y", ".hidden"):
        with pytest.raises(InvalidScanId):
            validate_scan_id(bad)
    with pytest.raises(InvalidScanId):
        safe_child(tmp_path, "../outside", ".nii.gz")
    assert validate_scan_id("valid_1001_a_1") == "valid_1001_a_1"


def test_sharding_is_a_deterministic_partition():
    files = [Path(f"s{i:02d}.nii.gz") for i in range(10)]
    shards = [shard_files(list(reversed(files)), (k, 3)) for k in (1, 2, 3)]
    assert sorted(p for shard in shards for p in shard) == files
    assert shards[0] == [Path("s00.nii.gz"), Path("s03.nii.gz"), Path("s06.nii.gz"), Path("s09.nii.gz")]


def test_missing_totalsegmentator_weights_end_quickly_with_install_hint(example_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "empty_home"))
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)
    started = time.perf_counter()
    with pytest.raises(WeightsMissing, match="totalseg_download_weights"):
        run(SegmentConfig(example_dirs["ct"], example_dirs["out"]))
    cli = CliRunner().invoke(app, ["segment", str(example_dirs["ct"]), "-o", str(tmp_path / "cli_out")])
    assert cli.exit_code == 2
    assert "TOTALSEG_HOME_DIR" in cli.output
    assert time.perf_counter() - started < 30


def test_cli_import_exit_codes(example_dirs, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["segment", str(example_dirs["ct"]), "-o", str(example_dirs["out"]),
                             "--engine", "import", "--from", str(example_dirs["src"])])
    assert ok.exit_code == 0, ok.output
    (example_dirs["ct"] / "broken.nii.gz").write_bytes(b"\x1f\x8bgarbage")
    bad = runner.invoke(app, ["segment", str(example_dirs["ct"]), "-o", str(example_dirs["out"]),
                              "--engine", "import", "--from", str(example_dirs["src"])])
    assert bad.exit_code == 1 and "broken" in bad.output
    usage = runner.invoke(app, ["segment", str(example_dirs["ct"]), "-o", str(tmp_path / "x"), "--engine", "import"])
    assert usage.exit_code == 2 and "--from" in usage.output
