"""Shared fixtures. Tests that need the real TotalSegmentator example skip where it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_EXAMPLE = Path(os.environ.get(
    "CTGLIP_SHARED_EXAMPLE",
    Path(__file__).resolve().parents[2] / "shared" / "data" / "totalsegmentator_example",
))


@pytest.fixture(scope="session")
def shared_example_dir() -> Path:
    """The read-only real CT + TotalSegmentator segmentation (present on the project's machines and CI)."""
    if not (SHARED_EXAMPLE / "example_ct_sm.nii.gz").is_file():
        pytest.skip(f"real TotalSegmentator example not found at {SHARED_EXAMPLE} (only on the project's "
                    "machines; CTGLIP_SHARED_EXAMPLE points elsewhere)")
    return SHARED_EXAMPLE


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory) -> Path:
    """A small dataset taken through the real stages: synth -> segment (import) -> parse-reports -> cache.

    ``root/ct``, ``root/masks`` (synth truth), ``root/segmentations``, ``root/parsed``, ``root/cache``,
    ``root/labels.csv``, ``root/abnormalities.json``. 10 scans of 64^3 voxels at 3.5 mm; 32^3 crops.
    """
    from stages.cache import CacheConfig, PreprocessConfig
    from stages.cache import run as run_cache
    from stages.parse_reports import ParseReportsConfig
    from stages.parse_reports import run as run_parse
    from stages.segment import SegmentConfig
    from stages.segment import run as run_segment
    from stages.synth import SynthConfig
    from stages.synth import run as run_synth

    root = tmp_path_factory.mktemp("pipeline")
    run_synth(SynthConfig(out_dir=root, n_scans=10, seed=3, shape=(64, 64, 64), spacing=(3.5, 3.5, 3.5),
                          prevalence=0.4, preview=False))
    run_segment(SegmentConfig(root / "ct", root / "segmentations", engine="import", import_from=root / "masks"))
    run_parse(ParseReportsConfig(reports=root / "reports.csv", out_dir=root / "parsed"))
    preprocess = PreprocessConfig(spacing=(3.5, 3.5, 3.5), crop_size=(32, 32, 32), volume_size=(32, 32, 32))
    result = run_cache(CacheConfig(ct_dir=root / "ct", masks_dir=root / "segmentations",
                                   reports_dir=root / "parsed", out_dir=root / "cache", preprocess=preprocess))
    if result.exit_code != 0:
        raise RuntimeError(f"tiny pipeline failed: {[(i.item_id, i.error) for i in result.failed]}")
    return root


@pytest.fixture(scope="session")
def tiny_cache_dir(tiny_pipeline_dir: Path) -> Path:
    """The cache folder of :func:`tiny_pipeline_dir`."""
    return tiny_pipeline_dir / "cache"
