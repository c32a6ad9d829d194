"""``ctglip cache --shard K/N``: two shard runs plus the merge run equal one single run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.cache import CacheConfig, PreprocessConfig, load_cache, run
from stages.common.errors import SetupError
from stages.common.manifest import ManifestError, read_manifest

PREPROCESS = PreprocessConfig(spacing=(3.5, 3.5, 3.5), crop_size=(32, 32, 32), volume_size=(32, 32, 32))


def _config(root: Path, out: Path, **options) -> CacheConfig:
    return CacheConfig(ct_dir=root / "ct", masks_dir=root / "segmentations", reports_dir=root / "parsed",
                       out_dir=out, preprocess=PREPROCESS, **options)


def test_two_shards_and_merge_equal_a_single_run(tiny_pipeline_dir: Path, tmp_path: Path) -> None:
    single = tiny_pipeline_dir / "cache"  # built in one run by the fixture, same config
    out = tmp_path / "sharded"
    first = run(_config(tiny_pipeline_dir, out, shard=(1, 2)))
    second = run(_config(tiny_pipeline_dir, out, shard=(2, 2)))
    first_ids, second_ids = {i.item_id for i in first.items}, {i.item_id for i in second.items}
    assert first_ids and second_ids and not first_ids & second_ids
    assert not (out / "index.parquet").exists()
    with pytest.raises(ManifestError):
        read_manifest(out, "cache")  # not usable before the merge
    merged = run(_config(tiny_pipeline_dir, out))
    assert {i.status for i in merged.items} == {"done-earlier"}
    assert {i.item_id for i in merged.items} == first_ids | second_ids
    for name in ("index.parquet", "texts.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name), pd.read_parquet(single / name))
    assert np.array_equal(np.load(out / "text_embeddings.npy"), np.load(single / "text_embeddings.npy"))
    assert json.loads((out / "vocab.json").read_text()) == json.loads((single / "vocab.json").read_text())
    a, b = load_cache(out), load_cache(single)
    assert len(a) == len(b) and all(np.array_equal(a[i]["image"], b[i]["image"]) for i in range(len(a)))


def test_shard_with_overwrite_is_refused(tiny_pipeline_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="--overwrite cannot be combined with --shard"):
        _config(tiny_pipeline_dir, tmp_path / "x", shard=(1, 2), overwrite=True)
