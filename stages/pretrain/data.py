"""Training data from a ``ctglip cache``: sample selection, scan-level split, the
abnormality-dictionary candidate table, a dataset over the memory-mapped cache, and a
deterministic global-batch sampler.

Batch order and augmentation depend only on (seed, epoch, position), never on RNG state
carried between steps, so a resumed run sees exactly the batches an uninterrupted one
would, and a DDP run's ranks together see the one-process global batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from stages.common.errors import SetupError
from stages.common.manifest import EMPTY, OK, ItemStatus


def translate(volume: np.ndarray, offsets: np.ndarray, pad_mode: str) -> np.ndarray:
    """``volume`` moved by whole voxels (``offsets`` per axis); the uncovered border is filled
    by ``np.pad``'s ``pad_mode`` ("edge" for images, "constant" zeros for masks)."""
    margin = int(np.abs(offsets).max(initial=0))
    if margin == 0:
        return volume
    padded = np.pad(volume, margin, mode=pad_mode)
    return padded[tuple(slice(margin - int(offset), margin - int(offset) + size)
                        for offset, size in zip(offsets, volume.shape))]


@dataclass(frozen=True)
class Augmentation:
    """Training-time jitter of a windowed sample (image in [0, 1]) and its organ mask.

    ``brightness`` is a fraction of the window (``from_hu`` converts HU): CT numbers are
    calibrated, and steatosis or emphysema *are* density changes of a few tens of HU, so
    brightness jitter must stay near scanner-to-scanner variation or it erases them.
    Spatial jitter (a shared translation and random flips) is what keeps the encoder from
    memorising the handful of crops in which a rare abnormality appears.
    """

    brightness: float = 0.0
    contrast: float = 0.0
    shift_voxels: int = 0
    flip_axes: tuple[int, ...] = ()

    @classmethod
    def from_hu(cls, jitter_hu: float, window: tuple[float, float], contrast: float, shift_voxels: int,
                flip_axes: tuple[int, ...]) -> "Augmentation":
        return cls(jitter_hu / (window[1] - window[0]), contrast, shift_voxels, tuple(flip_axes))

    def __call__(self, image: np.ndarray, mask: np.ndarray | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        scale, shift = rng.uniform(-1.0, 1.0, size=2)
        image = np.clip(image * (1.0 + self.contrast * scale) + self.brightness * shift, 0.0, 1.0)
        offsets = rng.integers(-self.shift_voxels, self.shift_voxels + 1, size=image.ndim)
        flips = [axis for axis in self.flip_axes if rng.random() < 0.5]
        image = np.flip(translate(image, offsets, "edge"), flips)
        if mask is not None:
            mask = np.flip(translate(mask, offsets, "constant"), flips)
        return image, mask


@dataclass
class SamplePlan:
    """Which cache rows train, which validate, and one status item per scan."""

    train_rows: list[int]
    val_rows: list[int]
    items: list[ItemStatus] = field(default_factory=list)


def split_scans(scan_ids: list[str], val_fraction: float, seed: int) -> set[str]:
    """Validation scans: a seeded, order-independent choice of ``val_fraction`` of the scans."""
    if not 0.0 <= val_fraction < 1.0:
        raise SetupError(f"val fraction must be in [0, 1), got {val_fraction}")
    unique = sorted(set(scan_ids))
    count = int(round(len(unique) * val_fraction))
    if val_fraction > 0 and len(unique) > 1:
        count = min(max(count, 1), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[i] for i in order[:count]}


def plan_samples(index: Any, text_count: int, organ_count: int | None, val_fraction: float, seed: int,
                 include_incomplete: bool) -> SamplePlan:
    """Split cache rows by scan and keep the usable ones; reasons for every row left out.

    ``organ_count`` None: whole-volume rows, which have no organ index to check.
    """
    val_scans = split_scans(index["scan_id"].astype(str).tolist(), val_fraction, seed)
    train_rows: list[int] = []
    val_rows: list[int] = []
    per_scan: dict[str, dict[str, Any]] = {}
    failed: list[ItemStatus] = []
    for row, sample in enumerate(index.itertuples(index=False)):
        scan_id = str(sample.scan_id)
        state = per_scan.setdefault(scan_id, {"used": 0, "incomplete": 0})
        text_id = int(sample.text_id)
        organ_index = int(sample.organ_index) if organ_count is not None else 0
        if not 0 <= text_id < text_count or not 0 <= organ_index < (organ_count or 1):
            failed.append(ItemStatus(f"{scan_id}/{sample.organ}", "failed",
                                     f"cache row {row}: text_id {text_id} or organ_index {organ_index} out of range"))
            continue
        if not bool(sample.complete) and not include_incomplete:
            state["incomplete"] += 1
            continue
        state["used"] += 1
        (val_rows if scan_id in val_scans else train_rows).append(row)
    items = failed + [
        ItemStatus(scan_id, OK if state["used"] else EMPTY,
                   "" if state["used"] else "every sample is incomplete (cut by the scan border)",
                   extra={"split": "val" if scan_id in val_scans else "train", "samples": state["used"],
                          "skipped_incomplete": state["incomplete"]})
        for scan_id, state in sorted(per_scan.items())
    ]
    return SamplePlan(train_rows, val_rows, items)


@dataclass
class CandidateTable:
    """Per organ: its normal text (column 0) and its dictionary phrases' texts (columns 1..).

    ``text_ids`` are the cache text rows of every candidate (plus organ names); the
    ``*_index`` arrays point into ``text_ids`` (-1 pads).
    """

    text_ids: list[int]
    organ_index: np.ndarray  # [O, K] int64
    name_index: np.ndarray  # [O] int64, -1 where an organ has no name text

    def __post_init__(self) -> None:
        self.position_of = {text_id: position for position, text_id in enumerate(self.text_ids)}

    @classmethod
    def from_cache(cls, cache: Any) -> "CandidateTable":
        positions: dict[int, int] = {}

        def position(text_id: int) -> int:
            return positions.setdefault(int(text_id), len(positions))

        rows = []
        for organ in cache.organ_vocab:
            if organ not in cache.normal_text_ids:
                raise SetupError(f"cache has no normal text for organ {organ!r}")
            phrases = cache.abnormality_text_ids.get(organ, {})
            rows.append([position(cache.normal_text_ids[organ])]
                        + [position(phrases[phrase]) for phrase in sorted(phrases)])
        width = max((len(row) for row in rows), default=1)
        organ_index = np.full((len(rows), width), -1, dtype=np.int64)
        for i, row in enumerate(rows):
            organ_index[i, :len(row)] = row
        name_ids = cache.organ_name_text_ids
        name_index = np.array([position(name_ids[organ]) if organ in name_ids else -1
                               for organ in cache.organ_vocab], dtype=np.int64)
        text_ids = sorted(positions, key=positions.__getitem__)
        return cls(text_ids=text_ids, organ_index=organ_index, name_index=name_index)

    def dictionary_targets(self, sample: dict[str, Any]) -> np.ndarray:
        """Multi-hot over the organ's candidates: the normal text for a normal organ, the
        dictionary phrases it has for an abnormal one; all zero (ignored) when uncertain."""
        targets = np.zeros(self.organ_index.shape[1], dtype=np.float32)
        if sample["uncertain"]:
            return targets
        candidates = self.organ_index[int(sample["organ_index"])]
        if not sample["abnormal"]:
            targets[0] = 1.0
            return targets
        wanted = {self.position_of[int(t)] for t in sample["abnormality_text_ids"] if int(t) in self.position_of}
        for column, candidate in enumerate(candidates[1:], start=1):
            if candidate in wanted:
                targets[column] = 1.0
        return targets


class CacheDataset(Dataset):
    """Cache rows as tensors; indexed by ``(row position, epoch)`` from :class:`GlobalBatchSampler`.

    With ``candidates`` (grounded mode) items carry the organ mask and dictionary targets;
    without (global mode) only the image and text.
    """

    def __init__(self, cache: Any, rows: list[int], candidates: CandidateTable | None, seed: int,
                 augmentation: Augmentation | None):
        self.cache, self.rows, self.candidates = cache, rows, candidates
        self.seed, self.augmentation = seed, augmentation

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        position, epoch = key
        row = self.rows[position]
        sample = self.cache[row]
        image = np.asarray(sample["image"], dtype=np.float32)
        mask = np.asarray(sample["mask"], dtype=np.bool_) if self.candidates is not None else None
        if self.augmentation is not None:
            image, mask = self.augmentation(image, mask, np.random.default_rng([self.seed, epoch, row]))
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
            "text_id": torch.tensor(int(sample["text_id"]), dtype=torch.long),
        }
        if sample.get("density") is not None:  # caches from before density histograms have none
            item["density"] = torch.from_numpy(np.asarray(sample["density"], dtype=np.float32))
        if self.candidates is not None:
            item["mask"] = torch.from_numpy(np.ascontiguousarray(mask))[None]
            item["position"] = torch.from_numpy(np.asarray(sample["position"], dtype=np.float32))
            item["organ_index"] = torch.tensor(int(sample["organ_index"]), dtype=torch.long)
            item["dictionary_targets"] = torch.from_numpy(self.candidates.dictionary_targets(sample))
        return item

    def plain_item(self, position: int) -> dict[str, torch.Tensor]:
        """Un-augmented item (validation)."""
        augmentation, self.augmentation = self.augmentation, None
        try:
            return self[(position, 0)]
        finally:
            self.augmentation = augmentation


class GlobalBatchSampler(Sampler):
    """Yields this rank's share of each global batch as ``(position, epoch)`` keys.

    The epoch order is a permutation seeded by (seed, epoch); abnormal samples can be
    repeated ``oversample_abnormal`` times. Rank r takes the r-th slice of every global
    batch, so the union over ranks is exactly the one-process batch. Incomplete trailing
    batches are dropped so every step has the same global batch size.
    """

    def __init__(self, abnormal: list[bool], global_batch: int, rank: int, world_size: int, seed: int,
                 oversample_abnormal: int = 1):
        if global_batch % world_size:
            raise SetupError(f"batch size {global_batch} is not divisible by the {world_size} processes")
        if oversample_abnormal < 1:
            raise SetupError(f"oversample factor must be >= 1, got {oversample_abnormal}")
        self.pool = np.concatenate([np.arange(len(abnormal))]
                                   + [np.flatnonzero(abnormal)] * (oversample_abnormal - 1)).astype(np.int64)
        self.global_batch, self.rank, self.world_size, self.seed = global_batch, rank, world_size, seed
        self.local_batch = global_batch // world_size
        if self.batches_per_epoch == 0:
            raise SetupError(f"batch size {global_batch} is larger than the {len(self.pool)} training samples")
        self.epoch, self.start_batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return len(self.pool) // self.global_batch

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Iterate ``epoch`` from batch ``start_batch`` (resume mid-epoch)."""
        self.epoch, self.start_batch = epoch, start_batch

    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.pool)

    def __iter__(self):
        order = self.epoch_order(self.epoch)
        for batch in range(self.start_batch, self.batches_per_epoch):
            start = batch * self.global_batch + self.rank * self.local_batch
            for position in order[start:start + self.local_batch]:
                yield int(position), self.epoch

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.local_batch
