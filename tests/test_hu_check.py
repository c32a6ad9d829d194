"""The HU check on the real TotalSegmentator example: it passes real, cropped and synthetic CTs and
refuses every failure class built from the same scan, in every stage that reads a CT."""
from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from stages.common.errors import SetupError
from stages.common.hu_check import HUCheckError, check_hu, diagnosis, hu_stats, problems


@pytest.fixture(scope="module")
def real_hu(shared_example_dir: Path) -> np.ndarray:
    return np.asanyarray(nib.load(shared_example_dir / "example_ct.nii.gz").dataobj).astype(np.float32)


def _crop(volume: np.ndarray, fraction: float) -> np.ndarray:
    start = [int(n * (1 - fraction) / 2) for n in volume.shape]
    return volume[tuple(slice(s, s + int(n * fraction)) for s, n in zip(start, volume.shape))]


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.3, 0.2])
def test_real_ct_and_crops_inside_the_body_pass(real_hu: np.ndarray, fraction: float) -> None:
    volume = _crop(real_hu, fraction)
    assert problems(hu_stats(volume)) == []
    if fraction <= 0.3:
        assert hu_stats(volume).air_fraction < 0.01  # really no air: the check does not need it


def test_synth_scans_pass(tmp_path: Path) -> None:
    from stages.synth import SynthConfig, generate_scan

    config = SynthConfig(out_dir=tmp_path, n_scans=3, seed=5, shape=(64, 64, 64), spacing=(3.5, 3.5, 3.5))
    for index in range(3):
        assert problems(hu_stats(generate_scan(config, index).ct)) == []


@pytest.mark.parametrize("name, transform, cause", [
    ("stored", lambda hu: hu + 1024, "stored values"),
    ("stored crop", lambda hu: _crop(hu, 0.3) + 1024, "stored values"),
    ("stored slope 0.5", lambda hu: (hu + 1024) / 0.5, "does not look like a CT"),
    ("double rescale", lambda hu: hu - 1024, "rescaled twice"),
    ("double rescale crop", lambda hu: _crop(hu, 0.3) - 1024, "rescaled twice"),
    ("uniform noise", lambda hu: np.random.default_rng(0).uniform(-1024, 3071, hu.shape), "does not look"),
    ("unit noise", lambda hu: np.random.default_rng(0).standard_normal(hu.shape), "does not look"),
    ("binary mask", lambda hu: (hu > 100).astype(np.float32), "does not look"),
    ("8-bit image", lambda hu: np.clip((hu + 160) / 400 * 255, 0, 255).round(), "does not look"),
])
def test_failure_classes_are_refused_with_their_cause(real_hu: np.ndarray, name: str, transform, cause: str) -> None:
    values = transform(real_hu)
    with pytest.raises(HUCheckError) as raised:
        check_hu(values, Path("/data/scan.nii.gz"))
    message = str(raised.value)
    assert message.startswith("/data/scan.nii.gz: not a CT in Hounsfield units")
    assert cause in diagnosis(values) and cause in message
    assert "ctglip ingest" in message and "--metadata" in message


def test_real_segmentation_mask_is_refused(shared_example_dir: Path) -> None:
    mask = np.asanyarray(nib.load(shared_example_dir / "example_seg.nii.gz").dataobj)
    assert "distinct values" in "; ".join(problems(hu_stats(mask)))


def test_warn_and_off_modes(real_hu: np.ndarray) -> None:
    with pytest.warns(UserWarning, match="not a CT in Hounsfield units"):
        stats = check_hu(real_hu + 1024, "x.nii.gz", "warn")
    assert stats is not None and stats.p50 > 500
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_hu(real_hu + 1024, "x.nii.gz", "off") is None
    with pytest.raises(SetupError, match="--hu-check"):
        check_hu(real_hu, "x.nii.gz", "maybe")


def _stored_values_pair(shared_example_dir: Path, root: Path) -> tuple[Path, Path]:
    """The real CT and segmentation, the CT saved as stored values (HU + 1024, no header scaling)."""
    ct = nib.load(shared_example_dir / "example_ct_sm.nii.gz")
    ct_dir, seg_dir = root / "ct", root / "seg"
    ct_dir.mkdir()
    seg_dir.mkdir()
    stored = nib.Nifti1Image((np.asanyarray(ct.dataobj).astype(np.int16) + 1024).astype(np.int16), ct.affine)
    nib.save(stored, ct_dir / "stored.nii.gz")
    nib.save(ct, ct_dir / "good.nii.gz")
    seg = nib.load(shared_example_dir / "example_seg.nii.gz")
    for name in ("stored", "good"):
        nib.save(seg, seg_dir / f"{name}.nii.gz")
    return ct_dir, seg_dir


def test_segment_refuses_stored_values_and_goes_on(shared_example_dir: Path, tmp_path: Path) -> None:
    from stages.segment import SegmentConfig, run

    ct_dir, seg_dir = _stored_values_pair(shared_example_dir, tmp_path)
    result = run(SegmentConfig(ct_dir, tmp_path / "masks", engine="import", import_from=seg_dir))
    status = {item.item_id: item for item in result.items}
    assert status["good"].status == "ok" and status["stored"].status == "failed"
    assert "stored.nii.gz: not a CT in Hounsfield units" in status["stored"].error
    assert result.exit_code == 1
    warned = run(SegmentConfig(ct_dir, tmp_path / "masks", engine="import", import_from=seg_dir, hu_check="warn"))
    assert {item.item_id: item.status for item in warned.items}["stored"] == "ok"


def test_cache_preprocessing_refuses_stored_values(shared_example_dir: Path, tmp_path: Path) -> None:
    from stages.cache import PreprocessConfig, preprocess_scan

    ct_dir, seg_dir = _stored_values_pair(shared_example_dir, tmp_path)
    config = PreprocessConfig()
    preprocess_scan(ct_dir / "good.nii.gz", seg_dir / "good.nii.gz", config)
    with pytest.raises(HUCheckError, match="stored values"):
        preprocess_scan(ct_dir / "stored.nii.gz", seg_dir / "stored.nii.gz", config)
    scan = preprocess_scan(ct_dir / "stored.nii.gz", seg_dir / "stored.nii.gz", config, hu_check="off")
    assert scan.units
