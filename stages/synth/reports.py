"""Free-text reports written from the placed findings, varied the way radiologists vary them.

Topics (lungs, pleura, heart, aorta, liver, ...) are written in a varying order; normal organs
get a normal statement, a negation or no mention; abnormal ones get sizes, laterality and
sometimes a hedge. A reader misses each true finding with probability ``omit_fraction``;
nothing absent from the image is ever reported as present.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stages.synth import phrases
from stages.synth.lesions import Finding

HEDGE_RATE = 0.15
SEVERITY_ORDER = ("trace", "small", "mild", "moderate", "large", "marked", "severe")
BILATERAL_IMPRESSION = {"nodule": "bilateral pulmonary nodules.", "pleural effusion": "bilateral pleural effusions.",
                        "emphysema": "bilateral emphysema.", "consolidation": "bilateral consolidation.",
                        "cyst": "bilateral renal cysts.", "stone": "bilateral nephrolithiasis."}
LUNG_TYPES = ("nodule", "consolidation", "emphysema")
KIDNEY_TYPES = ("cyst", "stone")


@dataclass(frozen=True)
class Report:
    """The two free-text columns of ``reports.csv`` and which findings they state as present."""

    findings: str
    impression: str
    reported: tuple[tuple[str, str], ...]


def _side(organ: str) -> str:
    return organ.rsplit("_", 1)[1] if organ.endswith(("_left", "_right")) else ""


def _capitalise(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


class _Writer:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def chance(self, probability: float) -> bool:
        return bool(self.rng.random() < probability)

    def choose(self, options: Sequence[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def size(self, millimetres: int) -> str:
        return f"{millimetres / 10:.1f} cm" if millimetres >= 10 and self.chance(0.5) else f"{millimetres} mm"

    def slots(self, finding: Finding) -> dict[str, object]:
        details = finding.details
        side = _side(finding.organ)
        return {"side": side, "other_side": {"left": "right", "right": "left"}.get(side, ""),
                "lobe": details.get("lobe", ""), "location": details.get("location", ""),
                "severity": details.get("severity", ""), "count": details.get("count", 1),
                "length": details.get("length_cm", ""),
                "size": self.size(int(details["size_mm"])) if "size_mm" in details else ""}

    def fill(self, template: str, **slots: object) -> str:
        return _capitalise(template.format(**slots))

    def describe(self, finding: Finding) -> str:
        kind = finding.abnormality
        if kind in phrases.HEDGED and self.chance(HEDGE_RATE):
            return self.fill(self.choose(phrases.HEDGED[kind]), **self.slots(finding))
        if kind == "hypodense lesion" and finding.details.get("count", 1) > 1:
            kind = "hypodense lesion multiple"
        return self.fill(self.choose(phrases.ABNORMAL[kind]), **self.slots(finding))

    def bilateral(self, left: Finding, right: Finding) -> str:
        major, minor = sorted((left, right), key=lambda f: -f.details.get("size_mm", 0))
        slots = self.slots(major)
        minor_slots = self.slots(minor)
        slots.update(lobe2=minor_slots["lobe"], size2=minor_slots["size"],
                     severity=max((major.details.get("severity", "small"), minor.details.get("severity", "small")),
                                  key=SEVERITY_ORDER.index))
        return self.fill(self.choose(phrases.BILATERAL[major.abnormality]), **slots)

    def normal(self, topic: str, **slots: object) -> str:
        return self.fill(self.choose(phrases.NORMAL[topic]), **slots)


def _paired(writer: _Writer, kept: dict[tuple[str, str], Finding], organs: tuple[str, str],
            kinds: Sequence[str]) -> list[str]:
    """Sentences for findings of a left/right pair, merged into a bilateral statement sometimes."""
    sentences = []
    for kind in kinds:
        pair = [kept.get((organ, kind)) for organ in organs]
        if all(pair) and kind in phrases.BILATERAL and writer.chance(0.6):
            sentences.append(writer.bilateral(*pair))
        else:
            sentences.extend(writer.describe(f) for f in pair if f is not None)
    return sentences


def _lungs(writer: _Writer, kept: dict, visible: set[str]) -> list[str]:
    organs = ("lung_right", "lung_left")
    sentences = _paired(writer, kept, organs, LUNG_TYPES)
    abnormal = [organ for organ in organs if any((organ, kind) in kept for kind in LUNG_TYPES)]
    if not abnormal and visible >= set(organs):
        return [writer.normal("lungs")] if writer.chance(0.9) else []
    for organ in organs:
        if organ in visible and organ not in abnormal and writer.chance(0.5):
            sentences.append(writer.normal("lung", side=_side(organ)))
    for kind in LUNG_TYPES:
        if not any((organ, kind) in kept for organ in organs) and writer.chance(0.25):
            sentences.append(writer.fill(writer.choose(phrases.NEGATION[kind])))
    return sentences


def _pleura_and_heart(writer: _Writer, kept: dict, visible: set[str]) -> list[list[str]]:
    """Pleura and heart topics (one combined negation covers both when both are normal)."""
    organs = ("lung_right", "lung_left")
    pleura = _paired(writer, kept, organs, ("pleural effusion",))
    heart = [writer.describe(kept[("heart", kind)]) for kind in ("cardiomegaly", "pericardial effusion")
             if ("heart", kind) in kept]
    if "heart" not in visible:
        return [pleura or [writer.normal("pleura")]] if writer.chance(0.8) else [pleura]
    if not pleura and not heart and writer.chance(0.4):
        return [[writer.normal("pleura and pericardium")],
                [writer.fill(writer.choose(phrases.NEGATION["cardiomegaly"]))] if writer.chance(0.6) else []]
    if not pleura and writer.chance(0.8):
        pleura = [writer.normal("pleura")]
    if not heart and writer.chance(0.85):
        heart = [writer.normal("heart")]
    elif heart and len(heart) == 1:
        missing = "cardiomegaly" if ("heart", "cardiomegaly") not in kept else "pericardial effusion"
        if writer.chance(0.4):
            heart.append(writer.fill(writer.choose(phrases.NEGATION[missing])))
    return [pleura, heart]


def _single(writer: _Writer, kept: dict, visible: set[str], organ: str, kinds: Sequence[str],
            mention: float) -> list[str]:
    """An unpaired organ: its findings, plus negations of its other types; else a normal statement."""
    if organ not in visible:
        return []
    sentences = [writer.describe(kept[(organ, kind)]) for kind in kinds if (organ, kind) in kept]
    if not sentences:
        return [writer.normal(organ)] if writer.chance(mention) else []
    for kind in kinds:
        if (organ, kind) not in kept and kind in phrases.NEGATION and writer.chance(0.3):
            sentences.append(writer.fill(writer.choose(phrases.NEGATION[kind])))
    return sentences


def _kidneys(writer: _Writer, kept: dict, visible: set[str]) -> list[str]:
    organs = ("kidney_right", "kidney_left")
    sentences = _paired(writer, kept, organs, KIDNEY_TYPES)
    if not sentences:
        return [writer.normal("kidneys")] if writer.chance(0.85) and visible >= set(organs) else []
    for organ in organs:
        if organ in visible and not any((organ, kind) in kept for kind in KIDNEY_TYPES) and writer.chance(0.5):
            sentences.append(writer.normal("kidney", side=_side(organ)))
    if writer.chance(0.4):
        sentences.append("No hydronephrosis.")
    return sentences


def _group_normals(writer: _Writer, topics: list[list[str]], normal_organs: list[str]) -> None:
    """Fold several normal abdominal organs into one sentence, or give each its own."""
    if len(normal_organs) < 2 or not writer.chance(0.6):
        topics.extend([writer.normal(organ)] for organ in normal_organs if writer.chance(0.7))
        return
    names = {"liver": "liver", "gallbladder": "gallbladder", "spleen": "spleen", "pancreas": "pancreas",
             "adrenals": "adrenal glands"}
    chosen = [names[organ] for organ in normal_organs]
    listed = ", ".join(chosen[:-1]) + " and " + chosen[-1]
    topics.append([writer.fill(writer.choose(phrases.GROUP_NORMAL), organs=listed)])


def _impression(writer: _Writer, kept: dict[tuple[str, str], Finding]) -> str:
    items: list[str] = []
    done: set[tuple[str, str]] = set()
    for (organ, kind), finding in kept.items():
        if (organ, kind) in done:
            continue
        side = _side(organ)
        twin = (organ.replace(side, {"left": "right", "right": "left"}[side]), kind) if side else None
        if twin in kept and kind in BILATERAL_IMPRESSION:
            items.append(_capitalise(BILATERAL_IMPRESSION[kind]))
            done.update({(organ, kind), twin})
            continue
        if kind in ("calcification", "cyst") and writer.chance(0.3):
            continue
        items.append(writer.fill(writer.choose(phrases.IMPRESSION[kind]), **writer.slots(finding)))
        done.add((organ, kind))
    if not items:
        return writer.fill(writer.choose(phrases.NORMAL_IMPRESSION))
    order = writer.rng.permutation(len(items)) if writer.chance(0.3) else range(len(items))
    items = [items[i] for i in order]
    if writer.chance(0.5):
        return " ".join(f"{number}. {item}" for number, item in enumerate(items, start=1))
    return " ".join(items)


def write_report(findings: list[Finding], visible: Sequence[str], rng: np.random.Generator,
                 omit_fraction: float) -> Report:
    """FINDINGS and IMPRESSION text for one scan."""
    writer = _Writer(rng)
    misses = rng.random(len(findings))
    kept = {(f.organ, f.abnormality): f for f, draw in zip(findings, misses) if draw >= omit_fraction}
    seen = set(visible)
    topics: list[list[str]] = [_lungs(writer, kept, seen), *_pleura_and_heart(writer, kept, seen),
                               _single(writer, kept, seen, "aorta", ("calcification",), 0.7),
                               _kidneys(writer, kept, seen)]
    normal_abdominal = []
    for organ, kinds, mention in (("liver", ("hypodense lesion", "steatosis"), 0.85),
                                  ("gallbladder", ("gallstone",), 0.75), ("spleen", ("splenomegaly",), 0.8)):
        if organ in seen and not any((organ, kind) in kept for kind in kinds) and writer.chance(0.3):
            normal_abdominal.append(organ)
        else:
            topics.append(_single(writer, kept, seen, organ, kinds, mention))
    for topic in ("airways", "mediastinum", "pancreas", "adrenals", "bowel", "bones"):
        if topic in ("pancreas", "adrenals") and writer.chance(0.3):
            normal_abdominal.append(topic)
        elif writer.chance(0.55):
            topics.append([writer.normal(topic)])
    _group_normals(writer, topics, normal_abdominal)
    if writer.chance(0.6):
        topics = [topics[i] for i in writer.rng.permutation(len(topics))]
    preamble = [writer.fill(writer.choose(options)) for options, chance in
                ((phrases.TECHNIQUE, 0.8), (phrases.HISTORY, 0.6), (phrases.COMPARISON, 0.4)) if writer.chance(chance)]
    body = [sentence for topic in topics for sentence in topic]
    return Report(findings=" ".join(preamble + body), impression=_impression(writer, kept),
                  reported=tuple(sorted(kept)))
