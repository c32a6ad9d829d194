"""The reference labels of a run (``--labels``), in either shape, kept together with what they need:
organ-level rows (long CSV) or scan-level rows plus the label map (wide CSV)."""
from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from stages.zeroshot import io
from stages.zeroshot.label_map import LabelMap, load_label_map
from stages.zeroshot.prompts import PromptTemplates
from stages.zeroshot.protocols import Protocol
from stages.zeroshot.scan_labels import (attach_to_scans, labels_format, read_wide_labels, scan_label_rows,
                                         scoring_pairs, unscored_reason)


def names_organ(templates: tuple[str, ...]) -> bool:
    return any(f in ("organ", "Organ") for t in templates for _, f, _, _ in string.Formatter().parse(t))


@dataclass(frozen=True)
class ReferenceLabels:
    """``organ_level`` (scan_id, organ, abnormality, present) or ``scan_level`` (scan_id, label, present)."""

    path: Path | None = None
    organ_level: pd.DataFrame | None = None
    scan_level: pd.DataFrame | None = None
    label_map: LabelMap | None = None
    unscored: dict[str, str] = field(default_factory=dict)  # scan label -> why no model score exists

    @property
    def names(self) -> list[str]:
        """The scan-level labels the file has, in the map's order."""
        present = set(self.scan_level["label"]) if self.scan_level is not None else set()
        return [name for name in self.label_map.labels if name in present] if self.label_map else []

    def extend_label_space(self, label_space: dict[str, list[str]], templates: PromptTemplates,
                           protocol: Protocol, global_mode: bool) -> tuple[dict[str, list[str]], "ReferenceLabels"]:
        """The organ-level label space plus every (organ, text) the scan labels aggregate."""
        organ_free = not names_organ(templates.abnormality_positive + templates.abnormality_negative)
        extended = {organ: list(phrases) for organ, phrases in label_space.items()}
        for organ, texts in scoring_pairs(self.names, self.label_map, protocol.label_text, organ_free,
                                          global_mode).items():
            extended[organ] = sorted(set(extended.get(organ, [])) | set(texts))
        unscored = {name: reason for name in self.names
                    if (reason := unscored_reason(name, self.label_map, global_mode, organ_free))}
        return extended, replace(self, unscored=unscored)

    def attached(self, scan_ids: list[str], where: str) -> "ReferenceLabels":
        """The same labels keyed by the scans they describe (ids matching no scan: an error)."""
        if self.path is None:
            return self
        if self.organ_level is not None:
            return replace(self, organ_level=attach_to_scans(self.organ_level, scan_ids, self.path, where))
        return replace(self, scan_level=attach_to_scans(self.scan_level, scan_ids, self.path, where))

    def scan_label_predictions(self, predictions: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
        return scan_label_rows(predictions, [n for n in self.names if n not in self.unscored], self.label_map,
                               protocol.label_text)


def read_reference_labels(labels: Path | None, label_map: Path | None) -> ReferenceLabels:
    """Read ``--labels`` in the shape its columns show; ``--label-map`` goes with wide files only."""
    if labels is None:
        return ReferenceLabels()
    if labels_format(labels) == "long":
        if label_map is not None:
            raise io.ZeroshotInputError(f"{labels}: --label-map applies to wide (scan-level) labels, but this "
                                        "file is organ-level (scan_id, organ, abnormality, present)")
        reference = ReferenceLabels(Path(labels), organ_level=io.read_labels(labels))
    else:
        mapping = load_label_map(label_map)
        reference = ReferenceLabels(Path(labels), scan_level=read_wide_labels(labels, mapping), label_map=mapping)
    table = reference.organ_level if reference.organ_level is not None else reference.scan_level
    if table.empty:
        raise io.ZeroshotInputError(f"{labels}: the labels CSV has a header but no rows")
    return reference
