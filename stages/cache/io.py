"""Files of ``ctglip cache`` and the reader ``load_cache``. The only module that touches them.

Layout of a cache folder::

    cache_config.json         content config + hash, written first (refuses mixing configs)
    shards/<scan_id>/         one folder per scan, moved into place atomically when complete
        images.npy            uint8|float16 [n_organs, D, H, W], windowed [0, 1] (uint8: x/255)
        masks.npy             uint8 [n_organs, ceil(D*H*W/8)] (np.packbits of the bool masks)
        volume.npy            uint8|float16 [Dv, Hv, Wv] whole-volume sample (global baseline)
        samples.json          per-organ metadata (organ, complete, volume_ml, bbox, scale, position,
                              density), the whole scan's density histogram and the content hash of
                              the config that made the shard
    index.parquet             one row per sample (organ crops and whole volumes)
    texts.parquet             text_id, text
    text_embeddings.npy       float32 [n_texts, dim], L2-normalised frozen encoder output
    vocab.json                organ vocabulary, abnormality dictionary and their text ids
    manifest.json             stage manifest (config, hash, text encoder, versions, per-scan status)

``manifest.json`` is written last and removed first (when a run starts), so a folder with
a manifest is a complete cache; :func:`load_cache` also checks every indexed shard against
it (content hash, organ rows, array sizes) and refuses a cache that was changed since.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.cache.preprocess import OrganSample, PreprocessConfig
from stages.common.atomic import atomic_path, write_json_atomic
from stages.common.errors import SetupError, no_space_is_setup_error
from stages.common.ids import safe_child, validate_scan_id
from stages.common.manifest import MANIFEST_NAME, ManifestError, config_hash, read_manifest

CONTENT_CONFIG_NAME = "cache_config.json"
TABLES = ("index.parquet", "texts.parquet", "text_embeddings.npy", "vocab.json")


def to_stored(image: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "uint8":
        return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return image.astype(np.float16)


def from_stored(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    return array.astype(np.float32)


def shard_dir(cache_dir: Path, scan_id: str) -> Path:
    return safe_child(Path(cache_dir) / "shards", scan_id, "")


def claim_content_config(cache_dir: Path, content: dict[str, Any]) -> str:
    """Record the cache's content config, or refuse a folder built with another one.

    ``--overwrite`` never meets another config here: the folder claim moved the old cache aside.
    """
    path = Path(cache_dir) / CONTENT_CONFIG_NAME
    digest = config_hash(content)
    if path.is_file():
        existing = json.loads(path.read_text(encoding="utf-8"))
        if existing.get("hash") != digest:
            raise SetupError(
                f"{cache_dir} holds a cache built with another config (hash {existing.get('hash')}, "
                f"this run {digest}); use a new -o folder, or --overwrite to rebuild it")
    write_json_atomic(path, {"hash": digest, "config": content})
    return digest


def retract_tables(cache_dir: Path) -> None:
    """A run starts changing the folder: remove the manifest first, then the tables built from
    the shards, so a run killed before its end leaves a folder every reader refuses."""
    for name in (MANIFEST_NAME, *TABLES):
        (Path(cache_dir) / name).unlink(missing_ok=True)


def write_scan_shard(cache_dir: Path, scan_id: str, samples: list[OrganSample],
                     volume: np.ndarray | None, dtype: str, content_hash: str, scan_density: np.ndarray) -> None:
    """Write one scan's arrays into a temp folder, then move the folder into place."""
    final = shard_dir(cache_dir, scan_id)
    with no_space_is_setup_error(final):
        _write_shard_folder(final, scan_id, samples, volume, dtype, content_hash, scan_density)


def _write_shard_folder(final: Path, scan_id: str, samples: list[OrganSample],
                        volume: np.ndarray | None, dtype: str, content_hash: str, scan_density: np.ndarray) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{scan_id}.", dir=final.parent))
    try:
        if samples:
            np.save(temp / "images.npy", np.stack([to_stored(s.image, dtype) for s in samples]))
            np.save(temp / "masks.npy", np.stack([np.packbits(s.mask.ravel()) for s in samples]))
        if volume is not None:
            np.save(temp / "volume.npy", to_stored(volume, dtype))
        meta = [{"organ": s.organ, "complete": s.complete, "volume_ml": round(s.volume_ml, 3),
                 "bbox_vox": list(s.bbox_vox), "bbox_mm": [round(v, 2) for v in s.bbox_mm],
                 "scale": round(s.scale, 4), "position": [round(v, 5) for v in s.position],
                 "density": _rounded(s.density)} for s in samples]
        (temp / "samples.json").write_text(json.dumps({"scan_id": scan_id, "content_hash": content_hash,
                                                       "samples": meta, "scan_density": _rounded(scan_density)}),
                                           encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(temp, final)
    finally:
        if temp.exists():
            shutil.rmtree(temp)


def _rounded(fractions: np.ndarray) -> list[float]:
    """Histogram fractions for JSON: 7 significant digits keep a 1e-6 share of an organ."""
    return [float(f"{value:.7g}") for value in np.asarray(fractions, dtype=np.float64)]


def read_scan_meta(cache_dir: Path, scan_id: str, content_hash: str) -> list[dict[str, Any]] | None:
    """The scan's sample metadata, or None when its shard is not (completely) written or was made
    with another content config."""
    shard = read_scan_json(cache_dir, scan_id, content_hash)
    return None if shard is None else shard["samples"]


def read_scan_json(cache_dir: Path, scan_id: str, content_hash: str) -> dict[str, Any] | None:
    """The scan's ``samples.json`` (samples, whole-scan density), or None when not (completely)
    written or made with another content config."""
    path = shard_dir(cache_dir, scan_id) / "samples.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if data.get("content_hash") == content_hash else None


def write_tables(cache_dir: Path, index: pd.DataFrame, texts: list[str], embeddings: np.ndarray,
                 vocab: dict[str, Any]) -> None:
    with atomic_path(Path(cache_dir) / "index.parquet") as temp:
        index.to_parquet(temp, index=False)
    with atomic_path(Path(cache_dir) / "texts.parquet") as temp:
        pd.DataFrame({"text_id": np.arange(len(texts)), "text": texts}).to_parquet(temp, index=False)
    with atomic_path(Path(cache_dir) / "text_embeddings.npy") as temp:
        np.save(temp, embeddings.astype(np.float32))
    write_json_atomic(Path(cache_dir) / "vocab.json", vocab)


@dataclass
class Cache:
    """Read-only view of a cache: ``len(cache)``, ``cache[i]`` -> sample dict (see module doc)."""

    path: Path
    kind: str
    manifest: dict[str, Any]
    index: pd.DataFrame
    texts: list[str]
    text_embeddings: np.ndarray
    vocab: dict[str, Any]
    _arrays: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.index)

    @cached_property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.manifest["config"]["preprocess"])

    @property
    def text_encoder(self) -> dict[str, Any]:
        return self.manifest["text_encoder"]

    @property
    def organ_vocab(self) -> list[str]:
        return self.vocab["organ_vocab"]

    @property
    def organ_name_text_ids(self) -> dict[str, int]:
        return self.vocab["organ_name_text_ids"]

    @property
    def normal_text_ids(self) -> dict[str, int]:
        return self.vocab["normal_text_ids"]

    @property
    def abnormality_dictionary(self) -> dict[str, dict[str, int]]:
        return self.vocab["abnormality_dictionary"]

    @property
    def abnormality_text_ids(self) -> dict[str, dict[str, int]]:
        return self.vocab["abnormality_text_ids"]

    def _array(self, scan_id: str, name: str) -> np.ndarray:
        key = (scan_id, name)
        if key not in self._arrays:
            path = shard_dir(self.path, scan_id) / name
            try:
                self._arrays[key] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as error:
                raise ManifestError(f"{path}: unreadable cache array ({error}); the cache is damaged: "
                                    f"rebuild it with `ctglip cache ... -o {self.path} --overwrite`") from error
        return self._arrays[key]

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self.index):
            raise IndexError(f"sample {i} out of range for a cache of {len(self.index)}")
        row = self.index.iloc[i]
        scan_id = str(row["scan_id"])
        if self.kind == "volume":
            image = from_stored(np.asarray(self._array(scan_id, "volume.npy")))
            mask = np.ones(image.shape, dtype=bool)
            position = np.zeros(3, dtype=np.float32)
        else:
            image = from_stored(np.asarray(self._array(scan_id, "images.npy")[int(row["row"])]))
            packed = np.asarray(self._array(scan_id, "masks.npy")[int(row["row"])])
            mask = np.unpackbits(packed, count=image.size).reshape(image.shape).astype(bool)
            position = np.asarray(row["position"], dtype=np.float32)
        return {
            "image": image,
            "mask": mask,
            "scan_id": scan_id,
            "organ": str(row["organ"]),
            "organ_index": int(row["organ_index"]),
            "position": position,
            "density": np.asarray(row["density"], dtype=np.float32) if "density" in row.index else None,
            "text": self.texts[int(row["text_id"])],
            "text_id": int(row["text_id"]),
            "abnormal": bool(row["abnormal"]),
            "uncertain": bool(row["uncertain"]),
            "complete": bool(row["complete"]),
            "abnormalities": [str(p) for p in row["abnormalities"]],
            "abnormality_text_ids": [int(t) for t in row["abnormality_text_ids"]],
        }


def load_cache(path: str | Path, kind: str = "organ") -> Cache:
    """Open a cache built by ``ctglip cache``: organ crops (``kind="organ"``) or whole volumes."""
    path = Path(path)
    if kind not in ("organ", "volume"):
        raise ValueError(f"kind must be 'organ' or 'volume', got {kind!r}")
    if (path / CONTENT_CONFIG_NAME).is_file() and not (path / MANIFEST_NAME).is_file():
        raise ManifestError(f"{path}: incomplete cache: a `ctglip cache` run into it did not finish (killed?) "
                            f"and its {MANIFEST_NAME} is not written yet; rerun that `ctglip cache` command")
    manifest = read_manifest(path, "cache")
    for name in TABLES:
        if not (path / name).is_file():
            raise ManifestError(f"{path / name} is missing: the cache is incomplete; rerun `ctglip cache`")
    index = pd.read_parquet(path / "index.parquet")
    index = index[index["kind"] == kind].reset_index(drop=True)
    if kind == "volume" and index.empty:
        raise ManifestError(f"{path}: the cache holds no whole-volume samples (built without them)")
    check_shards(path, manifest, index, kind)
    texts = pd.read_parquet(path / "texts.parquet").sort_values("text_id")["text"].tolist()
    embeddings = np.load(path / "text_embeddings.npy")
    vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
    return Cache(path, kind, manifest, index, texts, embeddings, vocab)


def check_shards(path: Path, manifest: dict[str, Any], index: pd.DataFrame, kind: str) -> None:
    """Refuse a cache whose shards are not the ones its manifest and index were built from."""
    rebuild = f"rebuild it with `ctglip cache ... -o {path} --overwrite`"
    expected = manifest.get("content_hash")
    claimed = path / CONTENT_CONFIG_NAME
    if not claimed.is_file() or json.loads(claimed.read_text(encoding="utf-8")).get("hash") != expected:
        raise ManifestError(f"{claimed}: does not match {path / MANIFEST_NAME} (content hash {expected}): the "
                            f"folder was changed by another `ctglip cache` run after this one; {rebuild}")
    arrays = ("images.npy", "masks.npy") if kind == "organ" else ("volume.npy",)
    for scan_id, rows in index.groupby("scan_id", sort=False):
        folder = shard_dir(path, validate_scan_id(str(scan_id)))
        meta_path = folder / "samples.json"
        if not meta_path.is_file():
            raise ManifestError(f"{meta_path} is missing although index.parquet lists scan {scan_id}: the "
                                f"cache was changed after it was built (an interrupted run?); {rebuild}")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("content_hash") != expected:
            raise ManifestError(f"{folder}: shard made with another cache config (content hash "
                                f"{meta.get('content_hash')}, the manifest's is {expected}): the cache was "
                                f"changed after it was built (an interrupted `--overwrite`?); {rebuild}")
        if kind == "organ":
            organs = [sample["organ"] for sample in meta["samples"]]
            for row, organ in zip(rows["row"], rows["organ"]):
                if row >= len(organs) or organs[row] != organ:
                    raise ManifestError(f"{meta_path}: sample {row} is not the {organ} that index.parquet "
                                        f"lists; {rebuild}")
        for name in arrays:
            problem = _npy_problem(folder / name)
            if problem:
                raise ManifestError(f"{folder / name}: {problem}; the cache is damaged: {rebuild}")


def _npy_problem(path: Path) -> str | None:
    """Why ``path`` cannot be mapped as the ``.npy`` array its header describes, or None."""
    try:
        np.load(path, mmap_mode="r")
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as error:  # a truncated file: "mmap length is greater than file size"
        return f"unreadable or truncated ({error})"
    return None
