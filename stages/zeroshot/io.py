"""Every file ``ctglip zeroshot`` reads (labels, label space) or writes (predictions,
metrics, embeddings). Errors name the file and the problem."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from stages.common.anatomy import organ_units
from stages.common.atomic import atomic_path, write_json_atomic
from stages.common.errors import InputError
from stages.common.labels import read_labels  # noqa: F401  (zeroshot's --labels reader, re-exported)

PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
EMBEDDINGS_FILE = "embeddings.npy"
EMBEDDINGS_INDEX_FILE = "embeddings_index.parquet"
PREDICTION_COLUMNS = ["scan_id", "organ", "task", "label", "score", "predicted_organ", "rank", "complete"]
EMBEDDING_INDEX_COLUMNS = ["row", "scan_id", "organ", "complete", "volume_ml", "source"]


class ZeroshotInputError(InputError):
    """A labels / label-space file that cannot be used; the message names the file."""


def _phrases(path: Path, organ: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise ZeroshotInputError(f"{path}: abnormalities of {organ!r} must be a list of phrases "
                                 "(or a phrase -> count mapping)")
    return sorted({p.strip() for p in value})


def label_space_from_mapping(mapping: dict[str, Any], source: str | Path) -> dict[str, list[str]]:
    """``{organ: phrases}`` from ``{organ: [phrase]}`` or ``{organ: {phrase: count}}``; organs checked."""
    units = organ_units()
    space = {}
    for organ, value in mapping.items():
        if str(organ).startswith("_"):
            continue
        if organ not in units:
            raise ZeroshotInputError(f"{source}: {organ!r} is not an organ unit (see `ctglip organs`)")
        phrases = _phrases(Path(str(source)), organ, value)
        if phrases:
            space[organ] = phrases
    return dict(sorted(space.items()))


def read_label_space(path: Path) -> dict[str, list[str]]:
    """The abnormalities to score per organ, from JSON/YAML (e.g. synth's ``abnormalities.json``).

    Accepted shapes: ``{organ: [phrase, ...]}``, ``{organ: {phrase: count}}``, either one under an
    ``"abnormalities"`` key (other top-level keys ignored), or a list of ``{"organ", "abnormality"}``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise ZeroshotInputError(f"{path}: cannot read abnormality list ({error})") from error
    if isinstance(data, dict) and isinstance(data.get("abnormalities"), (dict, list)):
        data = data["abnormalities"]
    if isinstance(data, list):
        grouped: dict[str, list[str]] = {}
        for entry in data:
            if not isinstance(entry, dict) or "organ" not in entry or not ({"abnormality", "phrase"} & set(entry)):
                raise ZeroshotInputError(f"{path}: list entries need 'organ' and 'abnormality' keys")
            grouped.setdefault(entry["organ"], []).append(entry.get("abnormality", entry.get("phrase")))
        data = grouped
    if not isinstance(data, dict):
        raise ZeroshotInputError(f"{path}: expected an organ -> abnormalities mapping")
    space = label_space_from_mapping(data, path)
    if not space:
        raise ZeroshotInputError(f"{path}: lists no abnormality")
    return space


def write_predictions(path: Path, predictions: pd.DataFrame) -> Path:
    with atomic_path(path) as temp:
        predictions[PREDICTION_COLUMNS].to_csv(temp, index=False, float_format="%.6g")
    return path


def read_predictions(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, dtype={"scan_id": str, "organ": str, "label": str, "predicted_organ": str})
    table["rank"] = table["rank"].astype("Int64")
    table["complete"] = table["complete"].astype(bool)
    return table


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_metrics(path: Path, metrics: dict) -> Path:
    """metrics.json; NaN (undefined metrics) becomes null."""
    write_json_atomic(path, _json_safe(metrics))
    return path


def read_metrics(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_embeddings(output_dir: Path, embeddings: np.ndarray, index: pd.DataFrame) -> tuple[Path, Path]:
    """``embeddings.npy`` (float32 [N, P], L2-normalised) and its parquet index (row i = array row i)."""
    if len(index) != len(embeddings):
        raise ValueError(f"embedding index has {len(index)} rows for {len(embeddings)} embeddings")
    array_path, index_path = output_dir / EMBEDDINGS_FILE, output_dir / EMBEDDINGS_INDEX_FILE
    with atomic_path(array_path) as temp:
        np.save(temp, np.ascontiguousarray(embeddings, dtype=np.float32))
    table = index.assign(row=np.arange(len(index)))[EMBEDDING_INDEX_COLUMNS].reset_index(drop=True)
    with atomic_path(index_path) as temp:
        table.to_parquet(temp, index=False)
    return array_path, index_path


def read_embeddings(output_dir: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """(embeddings, index) as written by :func:`write_embeddings`; row counts checked."""
    array_path, index_path = Path(output_dir) / EMBEDDINGS_FILE, Path(output_dir) / EMBEDDINGS_INDEX_FILE
    embeddings = np.load(array_path, allow_pickle=False)
    index = pd.read_parquet(index_path)
    if len(index) != len(embeddings):
        raise InputError(f"{index_path}: {len(index)} rows but {array_path} holds {len(embeddings)} embeddings")
    return embeddings, index
