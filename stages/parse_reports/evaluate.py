"""Precision and recall of organ grounding and abnormal flags on a labelled sentence set.

The set is JSONL, one sentence per line::

    {"id": "dev001", "text": "...", "organs": {"lung_left": "abnormal", "heart": "normal"}}

with states ``normal``, ``abnormal`` or ``uncertain`` (abnormal, but only hedged). Grounding is scored
over (sentence, organ) pairs; abnormal flags over (sentence, organ) pairs whose state is not normal.
A line with a ``"context"`` (the report text before the sentence: earlier sentences, an "Upper abdomen:"
heading) is parsed as that context followed by the sentence, and only the sentence's own organs are
scored: the sets of findings whose organ is implied by context, heading or prior use this.
A line may also give the normalised phrases it states, ``"phrases": {"liver": ["hypodense lesion"]}``;
on those lines every stated (organ, phrase) pair is scored, so an extra or wrong phrase counts.

Run ``python -m stages.parse_reports.evaluate tests/data/report_dev_set.jsonl`` to print the figures.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from stages.common.errors import InputError
from stages.parse_reports.parser import ReportParser

STATES = ("normal", "abnormal", "uncertain")


@dataclass
class Score:
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positive + self.false_positive
        return self.true_positive / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positive + self.false_negative
        return self.true_positive / expected if expected else 1.0

    def add(self, expected: set, predicted: set) -> None:
        self.true_positive += len(expected & predicted)
        self.false_positive += len(predicted - expected)
        self.false_negative += len(expected - predicted)


@dataclass
class DevSetScores:
    sentences: int = 0
    grounding: Score = field(default_factory=Score)
    abnormal: Score = field(default_factory=Score)
    uncertain: Score = field(default_factory=Score)
    phrases: Score = field(default_factory=Score)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.sentences} sentences"]
        for name in ("grounding", "abnormal", "uncertain", "phrases"):
            score: Score = getattr(self, name)
            lines.append(f"{name:>10}: precision {score.precision:.3f}  recall {score.recall:.3f}  "
                         f"(tp {score.true_positive}, fp {score.false_positive}, fn {score.false_negative})")
        return "\n".join(lines)


def read_dev_set(path: Path) -> list[dict]:
    """Labelled sentences; a malformed line is an error naming the file and line."""
    items = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            states = set(item["organs"].values())
            if not isinstance(item["text"], str) or not states <= set(STATES):
                raise InputError(f"states must be {STATES}")
            _check_phrases(item)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InputError(f"{path}:{number}: bad dev-set line ({error})") from error
        items.append(item)
    return items


def _check_phrases(item: dict) -> None:
    phrases = item.get("phrases", {})
    if not isinstance(phrases, dict) or not all(
            isinstance(values, list) and all(isinstance(value, str) for value in values) for values in phrases.values()):
        raise InputError("'phrases' must map organ names to lists of phrases")
    unlabelled = [organ for organ in phrases if item["organs"].get(organ, "normal") == "normal"]
    if unlabelled:
        raise InputError(f"'phrases' names organs not labelled abnormal or uncertain: {unlabelled}")


def evaluate_dev_set(path: Path, parser: ReportParser | None = None) -> DevSetScores:
    """Parse every sentence as a one-sentence FINDINGS section and score it against its labels."""
    parser = parser or ReportParser()
    scores = DevSetScores()
    for item in read_dev_set(path):
        expected = item["organs"]
        if "context" in item:
            context = item["context"]
            joiner = "" if not context or context.endswith(("\n", " ")) else " "
            predicted = parser.sentence_states(context + joiner + item["text"])[-1]
        else:
            report = parser.parse(findings=item["text"])
            predicted = {organ: ("uncertain" if r.uncertain else "abnormal" if r.abnormal else "normal")
                         for organ, r in report.organs.items()}
        scores.sentences += 1
        scores.grounding.add(set(expected), set(predicted))
        scores.abnormal.add({o for o, s in expected.items() if s != "normal"},
                            {o for o, s in predicted.items() if s != "normal"})
        scores.uncertain.add({o for o, s in expected.items() if s == "uncertain"},
                             {o for o, s in predicted.items() if s == "uncertain"})
        if expected != predicted:
            scores.errors.append(f"{item['id']}: {item['text']}\n    expected {expected}\n    got      {predicted}")
        if "phrases" in item and "context" not in item:
            wanted = {(organ, phrase) for organ, phrases in item["phrases"].items() for phrase in phrases}
            stated = {(organ, phrase) for organ, r in report.organs.items() for phrase in r.abnormalities}
            scores.phrases.add(wanted, stated)
            if wanted != stated:
                scores.errors.append(f"{item['id']}: {item['text']}\n    expected phrases {sorted(wanted)}\n"
                                     f"    got              {sorted(stated)}")
    return scores


if __name__ == "__main__":
    result = evaluate_dev_set(Path(sys.argv[1]))
    if "--errors" in sys.argv:
        print("\n".join(result.errors))
    print(result.summary())
