"""The label map: scan-level findings (CT-RATE's 18 columns, synth's findings) -> organ units and
prompt phrase. Shipped as ``label_map.json`` beside this file; ``--label-map FILE`` replaces it.

Checked when read, against the one anatomy table, so a typo in an organ name stops the run
before any scan is scored rather than leaving a label silently unscored.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from stages.common.anatomy import organ_units
from stages.zeroshot.io import ZeroshotInputError

DEFAULT_LABEL_MAP = Path(__file__).with_name("label_map.json")
AGGREGATES = ("max", "mean")


@dataclass(frozen=True)
class LabelEntry:
    """One scan-level label: the organs that carry it and the phrase organ prompts use."""

    name: str
    organs: tuple[str, ...]  # empty: no organ unit holds it (scored by global checkpoints only)
    phrase: str
    fvlm16: bool  # one of the 16 labels fVLM's evaluation keeps

    def text(self, label_text: str) -> str:
        """What fills {abnormality}: the phrase (ctglip protocol) or the label name (ctclip, fvlm)."""
        return self.phrase if label_text == "phrase" else self.name


@dataclass(frozen=True)
class LabelMap:
    labels: dict[str, LabelEntry]
    aggregate: str
    version: str
    source: str

    def describe(self) -> dict[str, object]:
        return {"source": self.source, "version": self.version, "aggregate": self.aggregate}


def _read(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise ZeroshotInputError(f"{path}: cannot read label map ({error})") from error


def _entry(path: Path, name: str, value: object, units: set[str]) -> LabelEntry:
    if not isinstance(value, dict) or not isinstance(value.get("organs"), list) \
            or not isinstance(value.get("phrase"), str) or not value["phrase"].strip():
        raise ZeroshotInputError(f"{path}: label {name!r} needs 'organs' (a list of organ units, may be empty) "
                                 "and 'phrase' (text)")
    unknown = [organ for organ in value["organs"] if organ not in units]
    if unknown:
        raise ZeroshotInputError(f"{path}: label {name!r} names organ units {unknown} that are not in the "
                                 "anatomy table (see `ctglip organs`)")
    return LabelEntry(name, tuple(value["organs"]), value["phrase"].strip(), bool(value.get("fvlm16", False)))


def load_label_map(path: Path | None = None) -> LabelMap:
    """The shipped map, or ``path`` instead of it (JSON or YAML of the same shape)."""
    path = Path(path) if path is not None else DEFAULT_LABEL_MAP
    data = _read(path)
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict) or not data["labels"]:
        raise ZeroshotInputError(f"{path}: a label map needs a non-empty 'labels' mapping "
                                 f"(see {DEFAULT_LABEL_MAP.name} in the ctglip package)")
    aggregate = str(data.get("aggregate", "max"))
    if aggregate not in AGGREGATES:
        raise ZeroshotInputError(f"{path}: 'aggregate' must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    units = set(organ_units())
    labels = {str(name).strip(): _entry(path, str(name), value, units) for name, value in data["labels"].items()}
    source = "default" if path == DEFAULT_LABEL_MAP else str(path)
    return LabelMap(labels, aggregate, str(data.get("version", "custom")), source)
