"""Sample selection, scan-level split, augmentation and the deterministic global-batch sampler."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.common.errors import SetupError
from stages.pretrain.config import TrainConfig
from stages.pretrain.data import Augmentation, GlobalBatchSampler, plan_samples, split_scans, translate
from stages.pretrain.schedule import WarmupCosine


def batches(sampler: GlobalBatchSampler) -> list[list[int]]:
    keys = list(sampler)
    return [[position for position, _ in keys[i:i + sampler.local_batch]]
            for i in range(0, len(keys), sampler.local_batch)]


def test_split_is_by_scan_seeded_and_order_independent():
    scans = [f"scan{i:03d}" for i in range(50)]
    val = split_scans(scans, 0.2, seed=3)
    assert len(val) == 10
    assert split_scans(list(reversed(scans)) + scans, 0.2, seed=3) == val
    assert split_scans(scans, 0.2, seed=4) != val
    assert split_scans(scans, 0.0, seed=3) == set()
    assert len(split_scans(scans[:3], 0.01, seed=0)) == 1  # at least one validation scan
    with pytest.raises(SetupError, match="val fraction"):
        split_scans(scans, 1.0, seed=0)


def test_plan_keeps_organs_of_a_scan_together_and_skips_incomplete():
    index = pd.DataFrame({
        "scan_id": ["a", "a", "b", "b", "c", "d"],
        "organ": ["liver", "spleen", "liver", "spleen", "liver", "liver"],
        "organ_index": [0, 1, 0, 1, 0, 0],
        "text_id": [0, 1, 0, 2, 0, 99],
        "complete": [True, False, True, True, False, True],
    })
    plan = plan_samples(index, text_count=3, organ_count=2, val_fraction=0.3, seed=0, include_incomplete=False)
    assert set(plan.train_rows).isdisjoint(plan.val_rows)
    used = sorted(plan.train_rows + plan.val_rows)
    assert used == [0, 2, 3]  # row 1 and 4 incomplete, row 5 has an invalid text id
    by_scan = {item.item_id: item for item in plan.items}
    assert by_scan["c"].status == "empty" and "incomplete" in by_scan["c"].error
    assert by_scan["a"].extra["skipped_incomplete"] == 1
    assert by_scan["d/liver"].status == "failed" and "text_id 99" in by_scan["d/liver"].error
    val_rows = set(plan.val_rows)
    for scan, rows in (("a", {0}), ("b", {2, 3})):
        assert rows <= val_rows or rows.isdisjoint(val_rows)
        assert (by_scan[scan].extra["split"] == "val") == (rows <= val_rows)
    everything = plan_samples(index, 3, 2, 0.3, 0, include_incomplete=True)
    assert len(everything.train_rows + everything.val_rows) == 5


def test_ranks_together_see_exactly_the_one_process_global_batch():
    abnormal = [i % 4 == 0 for i in range(21)]
    single = GlobalBatchSampler(abnormal, global_batch=6, rank=0, world_size=1, seed=7)
    ranks = [GlobalBatchSampler(abnormal, global_batch=6, rank=r, world_size=2, seed=7) for r in range(2)]
    assert single.batches_per_epoch == 3 and len(single) == 18  # the incomplete last batch is dropped
    for epoch in (0, 1):
        for sampler in [single, *ranks]:
            sampler.set_position(epoch)
        joined = [a + b for a, b in zip(batches(ranks[0]), batches(ranks[1]))]
        assert joined == batches(single)
        assert all(e == epoch for _, e in single)
    single.set_position(0)
    first = batches(single)
    single.set_position(1)
    assert batches(single) != first  # a new order every epoch
    single.set_position(0, start_batch=2)
    assert batches(single) == first[2:]  # resume mid-epoch


def test_oversampling_repeats_abnormal_samples_and_batch_checks():
    abnormal = [True, False, False, False]
    sampler = GlobalBatchSampler(abnormal, global_batch=2, rank=0, world_size=1, seed=0, oversample_abnormal=3)
    positions = [position for position, _ in sampler]
    assert positions.count(0) == 3 and len(positions) == 6
    with pytest.raises(SetupError, match="not divisible"):
        GlobalBatchSampler(abnormal, global_batch=3, rank=0, world_size=2, seed=0)
    with pytest.raises(SetupError, match="larger than"):
        GlobalBatchSampler(abnormal, global_batch=8, rank=0, world_size=1, seed=0)


def test_warmup_then_cosine_to_zero():
    schedule = WarmupCosine(warmup_steps=4, total_steps=20)
    assert [schedule(step) for step in range(4)] == [0.25, 0.5, 0.75, 1.0]
    values = [schedule(step) for step in range(4, 21)]
    assert values == sorted(values, reverse=True) and values[-1] == pytest.approx(0.0)


def test_translate_moves_content_and_fills_the_border():
    volume = np.zeros((6, 6, 6), dtype=np.float32)
    volume[2, 3, 1] = 1.0
    moved = translate(volume, np.array([1, -2, 0]), "constant")
    assert moved.shape == volume.shape
    assert np.argwhere(moved == 1.0).tolist() == [[3, 1, 1]]
    ramp = np.broadcast_to(np.arange(6, dtype=np.float32)[:, None, None], (6, 6, 6))
    edge = translate(ramp, np.array([2, 0, 0]), "edge")
    assert edge[:3, 0, 0].tolist() == [0.0, 0.0, 0.0]  # replicated first slice, no artificial air
    assert edge[5, 0, 0] == 3.0


def test_augmentation_moves_image_and_mask_together_and_is_seeded():
    rng = np.random.default_rng(0)
    image = rng.uniform(0.2, 0.8, size=(16, 16, 16)).astype(np.float32)
    mask = np.zeros((16, 16, 16), dtype=bool)
    mask[5:9, 6:11, 4:8] = True
    image[mask] = 1.0  # a bright organ: after augmentation it must still lie under the mask
    augmentation = Augmentation.from_hu(15.0, (-1150.0, 350.0), 0.02, shift_voxels=3, flip_axes=(0, 2))
    assert augmentation.brightness == pytest.approx(0.01)
    seen_offsets = set()
    for key in range(20):
        out_image, out_mask = augmentation(image, mask, np.random.default_rng([7, key]))
        again_image, again_mask = augmentation(image, mask, np.random.default_rng([7, key]))
        assert np.array_equal(out_image, again_image) and np.array_equal(out_mask, again_mask)
        assert out_mask.sum() == mask.sum()  # 3-voxel moves keep this organ inside the 16^3 crop
        inside = out_image[out_mask]
        assert np.allclose(inside, inside[0]) and inside[0] > out_image[~out_mask].max()
        seen_offsets.add(tuple(np.argwhere(out_mask).min(axis=0)))
    assert len(seen_offsets) > 5
    intensity_only = Augmentation(brightness=0.05, contrast=0.1)
    jittered, same_mask = intensity_only(image, mask, np.random.default_rng(1))
    assert np.array_equal(same_mask, mask) and not np.array_equal(jittered, image)
    moved, _ = Augmentation(brightness=0.05, contrast=0.1, shift_voxels=2)(image, mask, np.random.default_rng(1))
    assert not np.array_equal(jittered, moved)


def test_augmentation_settings_are_checked():
    with pytest.raises(SetupError, match="shift_voxels"):
        TrainConfig(shift_voxels=-1)
    with pytest.raises(SetupError, match="jitter_hu"):
        TrainConfig(jitter_hu=-5.0)
    with pytest.raises(SetupError, match="flip_axes"):
        TrainConfig(flip_axes=(0, 3))
    assert TrainConfig(flip_axes=[2, 0]).to_dict()["flip_axes"] == [2, 0]
