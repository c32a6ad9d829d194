"""Bad CT inputs on real NIfTI files: the CT-folder listing (duplicate ids, broken links, entries that
are not files, empty folders), headers without a usable voxel size or orientation, truncated voxels."""
from __future__ import annotations

import gzip
import os
import shutil
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctglip_cli.main import app
from stages.cache import CacheConfig, PreprocessConfig
from stages.cache import run as run_cache
from stages.common.ct_folder import list_ct_folder
from stages.common.nifti import InputError, load_volume
from stages.segment import SegmentConfig
from stages.segment import run as run_segment

PREPROCESS = PreprocessConfig(spacing=(3.5, 3.5, 3.5), crop_size=(32, 32, 32), volume_size=(32, 32, 32))


def _nifti(path: Path, shape=(8, 8, 8)) -> Path:
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return path


def test_the_listing_accounts_for_every_entry(tmp_path):
    folder = tmp_path / "ct"
    folder.mkdir()
    good = _nifti(folder / "good.nii.gz")
    _nifti(folder / "x.nii.gz")
    _nifti(folder / "x.nii")
    _nifti(folder / "Case.NII.GZ")
    _nifti(folder / "case.nii.gz")
    (folder / "gone.nii.gz").symlink_to(tmp_path / "moved_away.nii.gz")
    (folder / "dir.nii.gz").mkdir()
    os.mkfifo(folder / "pipe.nii")
    _nifti(folder / "bad id.nii.gz")
    (folder / "README.txt").write_text("notes")
    listing = list_ct_folder(folder)
    assert listing.scans == {"good": good}
    reasons = {item.item_id: item.error for item in listing.rejected}
    assert set(reasons) == {"x", "Case", "case", "gone", "dir", "pipe", "bad id.nii.gz"}
    assert f"{folder / 'x.nii'}" in reasons["x"] and f"{folder / 'x.nii.gz'}" in reasons["x"]
    for scan_id in ("Case", "case"):
        assert "Case.NII.GZ" in reasons[scan_id] and "case.nii.gz" in reasons[scan_id]
    assert reasons["gone"].startswith(f"{folder / 'gone.nii.gz'}: broken symbolic link")
    assert "moved_away.nii.gz" in reasons["gone"]
    assert "is a folder" in reasons["dir"] and "not a regular file" in reasons["pipe"]
    assert "not allowed" in reasons["bad id.nii.gz"]
    assert listing.ignored == {"README.txt": "not a NIfTI file name (*.nii.gz, *.nii)"}


def test_a_folder_without_ct_files_is_refused(tmp_path):
    with pytest.raises(InputError, match="no CT files .* \\(it is empty\\)"):
        list_ct_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="holds 1 other files, e.g. notes.txt"):
        list_ct_folder(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        list_ct_folder(tmp_path / "missing")


def test_empty_ct_folder_exits_non_zero_in_segment_and_cache(tiny_pipeline_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    runner = CliRunner()
    segment = runner.invoke(app, ["segment", str(empty), "-o", str(tmp_path / "masks"), "--engine", "import",
                                  "--from", str(tiny_pipeline_dir / "masks")])
    assert segment.exit_code == 2 and "no CT files" in " ".join(segment.output.split()), segment.output
    cache = runner.invoke(app, ["cache", "--ct-dir", str(empty), "--masks-dir",
                                str(tiny_pipeline_dir / "segmentations"), "--reports-dir",
                                str(tiny_pipeline_dir / "parsed"), "-o", str(tmp_path / "cache")])
    assert cache.exit_code == 2 and "no CT files" in " ".join(cache.output.split()), cache.output


def test_duplicate_scan_ids_fail_by_name_and_never_double_samples(tiny_pipeline_dir, tmp_path):
    ct_dir = tmp_path / "ct"
    ct_dir.mkdir()
    first, second = sorted((tiny_pipeline_dir / "ct").glob("*.nii.gz"))[:2]
    shutil.copy(first, ct_dir / first.name)
    shutil.copy(second, ct_dir / second.name)
    duplicate = ct_dir / second.name.replace(".nii.gz", ".nii")
    duplicate.write_bytes(gzip.decompress(second.read_bytes()))
    (ct_dir / "lost.nii.gz").symlink_to(tmp_path / "nowhere.nii.gz")
    masks = tmp_path / "masks"
    segmented = run_segment(SegmentConfig(ct_dir, masks, engine="import", import_from=tiny_pipeline_dir / "masks"))
    status = {item.item_id: item for item in segmented.items}
    first_id, second_id = first.name[:-7], second.name[:-7]
    assert status[first_id].status == "ok" and segmented.exit_code == 1
    assert str(duplicate) in status[second_id].error and str(ct_dir / second.name) in status[second_id].error
    assert "broken symbolic link" in status["lost"].error
    assert not (masks / second.name).exists()
    # a mask from before the duplicate appeared is no longer trusted
    shutil.copy(tiny_pipeline_dir / "segmentations" / second.name, masks / second.name)
    cached = run_cache(CacheConfig(ct_dir=ct_dir, masks_dir=masks, reports_dir=tiny_pipeline_dir / "parsed",
                                   out_dir=tmp_path / "cache", preprocess=PREPROCESS))
    assert cached.exit_code == 1
    failed = {item.item_id: item.error for item in cached.failed}
    assert str(duplicate) in failed[second_id] and "broken symbolic link" in failed["lost"]
    index = pd.read_parquet(tmp_path / "cache" / "index.parquet")
    assert set(index["scan_id"]) == {first_id}
    assert not index.duplicated(["kind", "scan_id", "organ", "row"]).any()


def _patched(source: Path, target: Path, pixdim=None, qform=None, sform=None) -> Path:
    """A copy of ``source`` whose raw header fields are overwritten (what another tool might write)."""
    raw = bytearray(gzip.decompress(source.read_bytes()))
    if pixdim is not None:
        struct.pack_into("<3f", raw, 80, *pixdim)
    if qform is not None:
        struct.pack_into("<h", raw, 252, qform)
    if sform is not None:
        struct.pack_into("<h", raw, 254, sform)
    target.write_bytes(gzip.compress(bytes(raw)))
    return target


@pytest.mark.parametrize(("header", "message"), [
    ({"pixdim": (0.0, 0.0, 0.0), "qform": 0, "sform": 0}, "no orientation .* nor a valid voxel size .* 1 mm"),
    ({"qform": 0, "sform": 0}, "no orientation \\(qform_code and sform_code are 0\\); rewrite"),
    ({"pixdim": (0.0, 3.5, 3.5), "qform": 1, "sform": 0}, "voxel size \\(pixdim\\) \\[0.0, 3.5, 3.5\\]"),
    ({"pixdim": (-3.5, 3.5, 3.5), "qform": 1, "sform": 0}, "voxel size \\(pixdim\\) \\[-3.5, 3.5, 3.5\\]"),
    ({"pixdim": (float("nan"), 3.5, 3.5), "qform": 1, "sform": 0}, "voxel size \\(pixdim\\) \\[nan"),
])
def test_a_ct_without_usable_spacing_or_orientation_is_refused(tiny_pipeline_dir, tmp_path, header, message):
    source = sorted((tiny_pipeline_dir / "ct").glob("*.nii.gz"))[0]
    bad = _patched(source, tmp_path / "bad.nii.gz", **header)
    with pytest.raises(InputError, match=f"bad.nii.gz: CT .*{message}"):
        load_volume(bad)


def test_segment_fails_a_ct_without_spacing_and_one_with_truncated_voxels(tiny_pipeline_dir, tmp_path):
    ct_dir = tmp_path / "ct"
    ct_dir.mkdir()
    sources = sorted((tiny_pipeline_dir / "ct").glob("*.nii.gz"))[:3]
    shutil.copy(sources[0], ct_dir / sources[0].name)
    _patched(sources[1], ct_dir / sources[1].name, pixdim=(0.0, 0.0, 0.0), qform=0, sform=0)
    data = sources[2].read_bytes()
    (ct_dir / sources[2].name).write_bytes(data[: len(data) * 2 // 3])
    ids = [path.name[:-7] for path in sources]
    for hu_check in ("error", "off"):  # the HU check reads the voxels; without it they are decompressed
        result = run_segment(SegmentConfig(ct_dir, tmp_path / f"masks_{hu_check}", engine="import",
                                           import_from=tiny_pipeline_dir / "masks", hu_check=hu_check))
        status = {item.item_id: item for item in result.items}
        assert status[ids[0]].status == "ok" and result.exit_code == 1
        assert status[ids[1]].status == "failed" and "no orientation" in status[ids[1]].error
        assert status[ids[2]].status == "failed"
        assert status[ids[2]].error.startswith(f"{ct_dir / sources[2].name}: "), status[ids[2]].error
        assert "truncated" in status[ids[2]].error
