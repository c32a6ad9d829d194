"""Organ grounding and abnormal flags on the labelled development sets (targets: >= 0.95; context set >= 0.9).

``report_dev_set.jsonl`` was written before the parser; ``report_dev_set.holdout.jsonl`` after it, as a
check of generalisation (its first-pass figures are in the stage's section of docs/formats.md).
``report_context_set.jsonl`` holds sentences whose finding's clause names no organ: the sentence before,
an "Organ:" or region heading, or the finding's prior decides.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from stages.parse_reports import ReportParser
from stages.parse_reports.evaluate import evaluate_dev_set, read_dev_set

DATA = Path(__file__).parent / "data"
TARGET = 0.95
CONTEXT_TARGET = 0.9


@pytest.fixture(scope="module")
def parser() -> ReportParser:
    return ReportParser()


@pytest.mark.parametrize("name", ["report_dev_set.jsonl", "report_dev_set.holdout.jsonl"])
def test_dev_set_precision_and_recall(parser, name):
    scores = evaluate_dev_set(DATA / name, parser)
    print(f"\n{name}\n{scores.summary()}")
    for score in (scores.grounding, scores.abnormal, scores.phrases):
        assert score.precision >= TARGET and score.recall >= TARGET, scores.summary() + "\n" + "\n".join(scores.errors)


def test_context_set_precision_and_recall(parser):
    scores = evaluate_dev_set(DATA / "report_context_set.jsonl", parser)
    print(f"\nreport_context_set.jsonl\n{scores.summary()}")
    for score in (scores.grounding, scores.abnormal):
        assert score.precision >= CONTEXT_TARGET and score.recall >= CONTEXT_TARGET, \
            scores.summary() + "\n" + "\n".join(scores.errors)


def test_context_set_is_large_and_varied():
    items = read_dev_set(DATA / "report_context_set.jsonl")
    contexts = [item["context"] for item in items]
    assert len(items) >= 150
    assert sum(not context for context in contexts) >= 30  # the prior alone decides
    assert sum(context.rstrip().endswith(":") for context in contexts) >= 30  # an organ or region heading
    assert sum(context.rstrip().endswith(".") for context in contexts) >= 60  # the sentence before
    assert sum(not item["organs"] for item in items) >= 5  # context that must not carry over
    assert {"normal", "abnormal", "uncertain"} <= {state for item in items for state in item["organs"].values()}


def test_dev_set_is_large_and_varied():
    items = read_dev_set(DATA / "report_dev_set.jsonl")
    states = [state for item in items for state in item["organs"].values()]
    assert len(items) >= 150
    assert {"normal", "abnormal", "uncertain"} <= set(states)
    assert sum(len(item["organs"]) > 1 for item in items) >= 20
    assert sum(not item["organs"] for item in items) >= 5
    assert sum("phrases" in item for item in items) >= 25


def test_malformed_dev_set_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "text": "x", "organs": {}}\n{"id": "b", "text": "y", "organs": {"liver": "odd"}}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        read_dev_set(path)


@pytest.mark.parametrize("phrases", ['{"liver": "cyst"}', '{"spleen": ["cyst"]}', '["cyst"]'])
def test_malformed_phrases_name_file_and_line(tmp_path, phrases):
    path = tmp_path / "bad.jsonl"
    path.write_text(f'{{"id": "a", "text": "Liver cyst.", "organs": {{"liver": "abnormal"}}, "phrases": {phrases}}}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1.*phrases"):
        read_dev_set(path)


def test_wrong_or_extra_phrases_count_against_the_parser(parser, tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "a", "text": "Hepatic steatosis.", "organs": {"liver": "abnormal"}, '
                    '"phrases": {"liver": ["cirrhosis"]}}\n')
    scores = evaluate_dev_set(path, parser)
    assert (scores.phrases.true_positive, scores.phrases.false_positive, scores.phrases.false_negative) == (0, 1, 1)
    assert scores.abnormal.precision == 1.0 and "expected phrases" in scores.errors[0]
