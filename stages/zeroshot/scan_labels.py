"""Scan-level labels: the wide CSV CT-RATE ships (``VolumeName`` or ``scan_id`` + one 0/1 column per
finding), matching its ids to scans, organ scores -> one score per scan and label, and the
``scan_labels`` section of metrics.json.

The literature reports scan-level figures; a grounded model scores organs, so a scan's score
for a label is aggregated over the organs the label map names (max by default, see the map).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from stages.common.ids import NIFTI_SUFFIXES
from stages.common.labels import LABEL_COLUMNS, read_text_csv
from stages.zeroshot.evaluate import EvaluationConfig, bootstrap_info, evaluate_keyed
from stages.zeroshot.io import ZeroshotInputError
from stages.zeroshot.label_map import LabelMap
from stages.zeroshot.predictions import VOLUME

ID_COLUMNS = ("VolumeName", "scan_id")
SCAN_LABEL_COLUMNS = ["scan_id", "label", "present"]
_TRUE, _FALSE = {"1", "1.0", "true", "yes"}, {"0", "0.0", "false", "no"}
# CT-RATE volume names: <split>_<patient>_<scan letter>_<reconstruction>, e.g. valid_1001_a_2
_RECONSTRUCTION = re.compile(r"^(?P<scan>.+_[A-Za-z]+)_\d+$")


def _header(path: Path) -> list[str]:
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0, dtype=str).columns]
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as problem:
        raise ZeroshotInputError(f"{path}: cannot read labels CSV ({problem})") from problem


def labels_format(path: Path) -> str:
    """``"long"`` (scan_id, organ, abnormality, present) or ``"wide"`` (an id column + one column per label)."""
    columns = _header(Path(path))
    if set(LABEL_COLUMNS) <= set(columns):
        return "long"
    if set(ID_COLUMNS) & set(columns):
        return "wide"
    raise ZeroshotInputError(f"{path}: labels CSV needs either columns {LABEL_COLUMNS} (one row per organ and "
                             f"abnormality) or VolumeName/scan_id plus one 0/1 column per finding; found {columns}")


def normalise_id(value: str) -> str:
    """A scan id from a VolumeName (``valid_1001_a_1.nii.gz`` -> ``valid_1001_a_1``)."""
    value = value.strip()
    for suffix in NIFTI_SUFFIXES:
        if value.lower().endswith(suffix):
            return value[: -len(suffix)]
    return value


def read_wide_labels(path: Path, label_map: LabelMap) -> pd.DataFrame:
    """``scan_id, label, present`` from a wide CSV; unknown columns, bad cells and conflicting
    duplicate rows are errors that name the file (and the line)."""
    path = Path(path)
    columns = _header(path)
    ids = [c for c in ID_COLUMNS if c in columns]
    if len(ids) != 1:
        raise ZeroshotInputError(f"{path}: give one id column, VolumeName or scan_id (found {ids or 'neither'})")
    label_columns = [c for c in columns if c != ids[0]]
    unknown = [c for c in label_columns if c not in label_map.labels]
    if unknown:
        raise ZeroshotInputError(f"{path}: columns {unknown} are not labels of the label map "
                                 f"({label_map.source}); known: {sorted(label_map.labels)}. Rename the columns or "
                                 "pass --label-map with entries for them")
    if not label_columns:
        raise ZeroshotInputError(f"{path}: no label columns beside {ids[0]}")
    table = read_text_csv(path, columns, "labels CSV", ZeroshotInputError)
    table["scan_id"] = table[ids[0]].map(normalise_id)
    empty = table["scan_id"] == ""
    if empty.any():
        raise ZeroshotInputError(f"{path}: line {int(np.argmax(empty.to_numpy())) + 2}: empty {ids[0]}")
    long = table.melt(id_vars=["scan_id"], value_vars=label_columns, var_name="label", value_name="flag")
    long["line"] = np.tile(np.arange(len(table)) + 2, len(label_columns))
    flags = long["flag"].str.strip().str.lower()
    bad = ~flags.isin(_TRUE | _FALSE)
    if bad.any():
        row = long[bad].iloc[0]
        raise ZeroshotInputError(f"{path}: line {row.line}, column {row.label!r}: expected 0 or 1, got {row.flag!r}")
    long["present"] = flags.isin(_TRUE)
    conflicting = long.groupby(["scan_id", "label"])["present"].nunique() > 1
    if conflicting.any():
        scan_id, label = conflicting[conflicting].index[0]
        raise ZeroshotInputError(f"{path}: scan {scan_id} is listed more than once with different {label!r} values")
    return long.drop_duplicates(["scan_id", "label"])[SCAN_LABEL_COLUMNS].reset_index(drop=True)


def attach_to_scans(labels: pd.DataFrame, scan_ids: list[str], path: Path, where: str) -> pd.DataFrame:
    """Labels re-keyed to the scans they describe. A scan takes its own row, or the row of its
    CT-RATE scan when the labels list scans (``valid_1001_a``) and the folder holds its
    reconstructions (``valid_1001_a_1``, ``_a_2``). Label ids that match no scan are an error."""
    label_ids = set(labels["scan_id"])
    owner = {}
    for scan in scan_ids:
        match = _RECONSTRUCTION.match(scan)
        if scan in label_ids:
            owner[scan] = scan
        elif match and match["scan"] in label_ids:
            owner[scan] = match["scan"]
    unmatched = sorted(label_ids - set(owner.values()))
    if unmatched:
        shown = ", ".join(unmatched[:10]) + (f", ... ({len(unmatched) - 10} more)" if len(unmatched) > 10 else "")
        raise ZeroshotInputError(f"{path}: {len(unmatched)} of {len(label_ids)} labelled scan ids match no scan in "
                                 f"{where}: {shown}. Score those scans too, or drop their rows")
    pairs = pd.DataFrame({"scan_id": list(owner), "label_id": list(owner.values())})
    return (labels.rename(columns={"scan_id": "label_id"}).merge(pairs, on="label_id")
            .drop(columns="label_id")[labels.columns.tolist()].reset_index(drop=True))


def scoring_pairs(labels: list[str], label_map: LabelMap, label_text: str,
                  organ_free_prompts: bool, global_mode: bool) -> dict[str, list[str]]:
    """``{organ: [text]}`` to score so that every label can be aggregated; a label that no organ
    holds is scored on the whole volume only by global models with prompts that name no organ."""
    pairs: dict[str, set[str]] = {}
    for name in labels:
        entry = label_map.labels[name]
        organs = entry.organs or ((VOLUME,) if global_mode and organ_free_prompts else ())
        for organ in organs:
            pairs.setdefault(organ, set()).add(entry.text(label_text))
    return {organ: sorted(texts) for organ, texts in pairs.items()}


def unscored_reason(name: str, label_map: LabelMap, global_mode: bool, organ_free_prompts: bool) -> str | None:
    if label_map.labels[name].organs or (global_mode and organ_free_prompts):
        return None
    return ("no organ unit holds it (label map: organs []); grounded models do not score it" if not global_mode
            else "no organ unit holds it; global models score it only with prompts that name no organ "
                 "(--protocol ctclip or fvlm)")


def scan_label_rows(predictions: pd.DataFrame, labels: list[str], label_map: LabelMap,
                    label_text: str) -> pd.DataFrame:
    """One ``scan_label`` prediction row per scan and label: the organ scores aggregated as the map
    says (``organ`` names the organ that gave the max, or all organs joined by '+' for mean)."""
    scored = predictions[predictions["task"] == "abnormality"]
    rows = []
    for name in labels:
        entry = label_map.labels[name]
        organs = entry.organs or (VOLUME,)
        selected = scored[scored["organ"].isin(organs) & (scored["label"] == entry.text(label_text))]
        for scan_id, group in selected.groupby("scan_id", sort=True):
            if label_map.aggregate == "max":
                best = group.loc[group["score"].idxmax()]
                organ, score = best["organ"], float(best["score"])
            else:
                organ, score = "+".join(sorted(group["organ"])), float(group["score"].mean())
            rows.append(dict(scan_id=scan_id, organ=organ, task="scan_label", label=name, score=score,
                             predicted_organ=None, rank=None, complete=bool(group["complete"].all())))
    return pd.DataFrame(rows, columns=predictions.columns)


def scan_label_metrics(predictions: pd.DataFrame, labels: pd.DataFrame, label_map: LabelMap,
                       config: EvaluationConfig, unscored: dict[str, str]) -> tuple[dict, pd.DataFrame]:
    """The ``scan_labels`` section of metrics.json and the evaluated rows (scan_id, label, score, present)."""
    scores = predictions[predictions["task"] == "scan_label"][["scan_id", "label", "score", "organ"]]
    joined = scores.merge(labels, on=["scan_id", "label"], how="inner")
    result = evaluate_keyed(joined, ["label"], config)
    per_label = {}
    for (name,), values in result.per_key.items():
        n_labelled = int((labels["label"] == name).sum())
        per_label[name] = {"organs": list(label_map.labels[name].organs), "fvlm16": label_map.labels[name].fvlm16,
                           **values, "n_unscored": n_labelled - values["n"]}
    present = [key for key, values in result.per_key.items() if values["auc"]["value"] is not None]
    fvlm16 = [key for key in present if label_map.labels[key[0]].fvlm16]
    section = {
        "macro": {**result.macro(present), "n_labels": len(present), "labels": [k[0] for k in present]},
        "macro_fvlm16": {**result.macro(fvlm16), "n_labels": len(fvlm16), "labels": [k[0] for k in fvlm16]},
        "aggregate": label_map.aggregate,
        "label_map": label_map.describe(),
        "f1_kind": config.f1,
        "threshold": result.threshold_info,
        "n_scans": result.n_scans,
        "bootstrap": bootstrap_info(config),
        "per_label": per_label,
        "unscored": {name: reason for name, reason in sorted(unscored.items())},
    }
    return section, result.evaluated

