"""The one anatomy table shared by every stage.

TotalSegmentator ``total`` label id <-> class name (read from the installed
``totalsegmentator.map_to_binary.class_map``, never retyped) <-> the *organ unit*
ctglip grounds report text to (e.g. the two left lobes form ``lung_left``) <->
organ group <-> report synonyms (kept as data in ``anatomy_synonyms.json``).

Masks are keyed by class *name* plus task/version, because ids differ between
TotalSegmentator's ``total_v1`` and ``total`` maps.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TOTALSEG_TASK = "total"
ANATOMY_TABLE_VERSION = "1"
_SYNONYMS_FILE = Path(__file__).with_name("anatomy_synonyms.json")

# Ordered rules: (class-name regex, organ unit template). First match wins;
# a class matching no rule is its own unit.
_UNIT_RULES: tuple[tuple[str, str], ...] = (
    (r"^lung_(upper|middle|lower)_lobe_(left|right)$", r"lung_\2"),
    (r"^kidney_cyst_(left|right)$", r"kidney_\1"),
    (r"^vertebrae_C\d+$", "vertebrae_cervical"),
    (r"^vertebrae_T\d+$", "vertebrae_thoracic"),
    (r"^vertebrae_L\d+$", "vertebrae_lumbar"),
    (r"^vertebrae_S1$", "sacrum"),
    (r"^rib_(left|right)_\d+$", r"ribs_\1"),
    (r"^atrial_appendage_left$", "heart"),
)

# Organ group by unit-name regex (first match wins).
_GROUP_RULES: tuple[tuple[str, str], ...] = (
    (r"^(lung_|trachea)", "respiratory"),
    (r"^(heart|aorta|pulmonary_vein|brachiocephalic|subclavian|common_carotid|superior_vena|"
     r"inferior_vena|portal_vein|iliac_)", "cardiovascular"),
    (r"^(esophagus|stomach|small_bowel|duodenum|colon|liver|gallbladder|pancreas)", "digestive"),
    (r"^(kidney|urinary_bladder)", "urinary"),
    (r"^(spleen)", "lymphatic"),
    (r"^(adrenal|thyroid)", "endocrine"),
    (r"^(prostate)", "reproductive"),
    (r"^(brain|spinal_cord)", "nervous"),
    (r"^(gluteus|autochthon|iliopsoas)", "muscular"),
    (r"^(vertebrae|sacrum|rib|humerus|scapula|clavicula|femur|hip|skull|sternum|costal)", "skeletal"),
)


@dataclass(frozen=True)
class OrganUnit:
    """An organ as reports talk about it: one or more TotalSegmentator classes."""

    name: str
    label_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    group: str
    base: str  # the side-less organ ("kidney" for kidney_left)
    side: str | None  # "left", "right" or None
    synonyms: tuple[str, ...]

    @property
    def display_name(self) -> str:
        """Readable name used in prompts and normal templates ("left kidney", "lumbar spine")."""
        base = self.synonyms[0] if self.synonyms else self.base.replace("_", " ")
        return f"{self.side} {base}" if self.side else base


@lru_cache(maxsize=1)
def totalseg_class_map() -> dict[int, str]:
    """Label id -> class name of TotalSegmentator's ``total`` task (installed package)."""
    from totalsegmentator.map_to_binary import class_map

    return {int(k): str(v) for k, v in class_map[TOTALSEG_TASK].items()}


def unit_of_class(class_name: str) -> str:
    """Organ unit a TotalSegmentator class belongs to."""
    for pattern, template in _UNIT_RULES:
        if re.match(pattern, class_name):
            return re.sub(pattern, template, class_name)
    return class_name


def _group_of_unit(unit: str) -> str:
    for pattern, group in _GROUP_RULES:
        if re.match(pattern, unit):
            return group
    return "other"


def _split_side(unit: str) -> tuple[str, str | None]:
    match = re.match(r"^(.*)_(left|right)$", unit)
    if match:
        return match.group(1), match.group(2)
    return unit, None


@lru_cache(maxsize=1)
def _synonyms() -> dict[str, list[str]]:
    with _SYNONYMS_FILE.open(encoding="utf-8") as handle:
        data = json.load(handle)
    return {key: list(value) for key, value in data.items() if not key.startswith("_")}


@lru_cache(maxsize=1)
def organ_units() -> dict[str, OrganUnit]:
    """All organ units, ordered by their smallest TotalSegmentator id."""
    members: dict[str, list[tuple[int, str]]] = {}
    for label_id, class_name in sorted(totalseg_class_map().items()):
        members.setdefault(unit_of_class(class_name), []).append((label_id, class_name))
    synonyms = _synonyms()
    units: dict[str, OrganUnit] = {}
    for name, pairs in members.items():
        base, side = _split_side(name)
        units[name] = OrganUnit(
            name=name,
            label_ids=tuple(i for i, _ in pairs),
            class_names=tuple(c for _, c in pairs),
            group=_group_of_unit(name),
            base=base,
            side=side,
            synonyms=tuple(synonyms.get(name, synonyms.get(base, []))),
        )
    return units


@lru_cache(maxsize=1)
def label_to_unit() -> dict[int, str]:
    """TotalSegmentator label id -> organ unit name."""
    return {i: unit.name for unit in organ_units().values() for i in unit.label_ids}


def unit_label_ids(unit: str) -> tuple[int, ...]:
    """Label ids of a unit; a clear error for an unknown unit."""
    units = organ_units()
    if unit not in units:
        raise KeyError(f"unknown organ unit {unit!r}; see `ctglip organs` for the table")
    return units[unit].label_ids


def anatomy_rows() -> list[dict[str, object]]:
    """The table as rows (for `ctglip organs` and docs)."""
    unit_of = label_to_unit()
    units = organ_units()
    return [
        {
            "label_id": label_id,
            "class_name": class_name,
            "organ_unit": unit_of[label_id],
            "group": units[unit_of[label_id]].group,
            "synonyms": ", ".join(units[unit_of[label_id]].synonyms),
        }
        for label_id, class_name in sorted(totalseg_class_map().items())
    ]
