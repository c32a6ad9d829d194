"""The parser never crashes: arbitrary Unicode, 1 MB reports and empty reports."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.parse_reports import ReportParser
from stages.parse_reports.readable import UnreadableReport

REPORT_WORDS = ["No", "pleural", "effusion", "left", "right", "lung", "lobe", "?", ".", ",", ";", ":", "\n", "FINDINGS:",
                "IMPRESSION:", "1.", "-", "nodule", "not", "possible", "T12", "L4-L5", "kidney", "cyst", "both",
                "bilaterally", "on the", "cannot be excluded", "unremarkable", "Liver:", "(", ")", "2.3 x 1.8 cm"]


@pytest.fixture(scope="module")
def parser() -> ReportParser:
    return ReportParser()


def _parse(parser: ReportParser, **texts):
    """The parse, or None where the parser refused the text as unreadable (its defined answer to gibberish)."""
    try:
        return parser.parse(**texts)
    except UnreadableReport as error:
        assert "words are English or radiology words" in str(error)
        return None


def _check(report) -> None:
    for organ, result in (report.organs.items() if report is not None else ()):
        assert result.texts and all(isinstance(text, str) and text for text in result.texts)
        assert result.uncertain <= result.abnormal
        assert set(result.hedged_abnormalities) <= set(result.abnormalities)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400))
def test_arbitrary_unicode_never_crashes(parser, text):
    _check(_parse(parser, text=text))
    _check(_parse(parser, findings=text, impression=text[::-1]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(REPORT_WORDS), max_size=80))
def test_report_like_word_salad_never_crashes(parser, words):
    report = parser.parse(text=" ".join(words))  # every word is a report word: always read
    _check(report)


def test_one_megabyte_report(parser):
    sentence = "Millimetric nodules are observed in both lungs; no pleural effusion. "
    report = parser.parse(findings=sentence * (1_000_000 // len(sentence) + 1))
    assert report.organs["lung_left"].abnormalities == ["nodule"]
    assert report.organs["lung_left"].negated_abnormalities == ["pleural effusion"]
    assert report.sentences > 25_000


def test_one_megabyte_without_any_break(parser):
    with pytest.raises(UnreadableReport, match="words are English or radiology words"):  # not read as normal
        parser.parse(findings="x" * 1_000_000)


@pytest.mark.parametrize("text", ["", " ", "\n\n\t", ".", "FINDINGS:", "IMPRESSION:\n", "1.", "\u200b", "\x00"])
def test_empty_like_reports(parser, text):
    report = parser.parse(findings=text, impression=text, text=text)
    assert report.organs == {}
