"""The synthetic benchmark's label space: which abnormalities each organ unit can have.

These organ units and normalised phrases are agreed with parse-reports, cache and zeroshot:
zero-shot prompts read "{display name} with {phrase}", so every phrase reads naturally after
"with" ("left kidney with stone", "liver with steatosis").
"""
from __future__ import annotations

from stages.common.anatomy import organ_units
from stages.common.errors import SetupError

ABNORMALITIES: dict[str, tuple[str, ...]] = {
    "liver": ("hypodense lesion", "steatosis"),
    "kidney_left": ("cyst", "stone"),
    "kidney_right": ("cyst", "stone"),
    "lung_left": ("nodule", "pleural effusion", "emphysema", "consolidation"),
    "lung_right": ("nodule", "pleural effusion", "emphysema", "consolidation"),
    "spleen": ("splenomegaly",),
    "heart": ("cardiomegaly", "pericardial effusion"),
    "aorta": ("calcification",),
    "gallbladder": ("gallstone",),
}

# Findings that are usually bilateral: one side drawn makes the other side likelier.
BILATERAL_TENDENCY: frozenset[str] = frozenset({"pleural effusion", "emphysema"})


def finding_keys() -> list[tuple[str, str]]:
    """Every (organ unit, abnormality) pair in a fixed order (also the RNG stream order)."""
    return [(unit, phrase) for unit, phrases in ABNORMALITIES.items() for phrase in phrases]


def label_space() -> dict[str, list[str]]:
    """The label space as plain lists, checked against the anatomy table."""
    units = organ_units()
    missing = [unit for unit in ABNORMALITIES if unit not in units]
    if missing:
        raise SetupError(f"synth label space names organ units missing from the anatomy table: {missing}")
    return {unit: list(phrases) for unit, phrases in ABNORMALITIES.items()}
