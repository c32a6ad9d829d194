"""Parse one report into organ-grounded text, abnormal/uncertain flags and abnormality phrases.

>>> parser = ReportParser()
>>> report = parser.parse(findings="Millimetric nodules in both lungs. No pericardial effusion.")
>>> sorted(report.organs), report.organs["heart"].abnormal
(['heart', 'lung_left', 'lung_right'], False)

Many reports: :meth:`ReportParser.parse_many` runs the pipeline component by component over batches of
reports, as spaCy's ``nlp.pipe`` does (each component's code and tables stay in the CPU caches: about 7%
faster than report by report), and gives each report's parse or the error that stopped it.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from spacy.tokens import Doc

from stages.parse_reports.grounding import SOURCE_RANK, SOURCES, FindingResult, tidy_text
from stages.parse_reports.heap import collector_paused
from stages.parse_reports.lexicon import load_lexicon
from stages.parse_reports.pipeline import build_pipeline
from stages.parse_reports.sections import COLUMN_TEXT, INITIAL_SECTION, PREVIOUS_PIECE
from stages.parse_reports.markup import strip_markup
from stages.parse_reports.readable import check_readable, known_words
from stages.parse_reports.tokens import TEXT_KEY, plain_spans, token_view

CHUNK_CHARS = 20_000
T = TypeVar("T")
BATCH_REPORTS = 32  # reports per batch in parse_many (16-128 measured alike)


@dataclass
class OrganReport:
    """What a report says about one organ unit."""

    organ: str
    texts: list[str] = field(default_factory=list)
    abnormalities: list[str] = field(default_factory=list)
    hedged_abnormalities: list[str] = field(default_factory=list)
    negated_abnormalities: list[str] = field(default_factory=list)
    stated_by: str = SOURCES[-1]  # most trusted source among statements about this organ
    abnormal_by: str = SOURCES[-1]  # ... among those stating an abnormality here

    @property
    def grounded_by(self) -> str:
        """How the report's text was tied to this organ: for an abnormal organ, how its abnormalities were."""
        return self.abnormal_by if self.abnormal else self.stated_by

    @property
    def text(self) -> str:
        return " ".join(self.texts)

    @property
    def abnormal(self) -> bool:
        """At least one abnormality is stated (not negated) for this organ."""
        return bool(self.abnormalities)

    @property
    def uncertain(self) -> bool:
        """The organ is abnormal only through hedged statements ("possible nodule")."""
        return self.abnormal and set(self.abnormalities) <= set(self.hedged_abnormalities)


@dataclass
class UnassignedSentence:
    """A FINDINGS/IMPRESSION sentence grounded to no organ unit (kept for review)."""

    section: str
    text: str
    abnormalities: list[str]


@dataclass
class ParsedReport:
    organs: dict[str, OrganReport]
    unassigned: list[UnassignedSentence]
    sentences: int


@dataclass(frozen=True)
class ReportText:
    """The texts of one report: FINDINGS / IMPRESSION columns, or one ``text`` with section headers."""

    findings: str | None = None
    impression: str | None = None
    text: str | None = None


@dataclass
class ParseResult:
    """One report of :meth:`ReportParser.parse_many`: its parse, or the error that stopped it."""

    report: ParsedReport | None
    error: Exception | None
    seconds: float  # wall time spent on this report (its own steps of each batch)


def split_long_text(text: str, limit: int = CHUNK_CHARS) -> list[str]:
    """Cut a huge report into pieces of at most ``limit`` characters at line or sentence ends."""
    pieces: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = max(window.rfind("\n") + 1, window.rfind(". ") + 2)
        cut = cut if cut > limit // 2 else limit
        pieces.append(text[:cut])
        text = text[cut:]
    pieces.append(text)
    return pieces


class ReportParser:
    """Holds one spaCy pipeline; reuse it for many reports."""

    def __init__(self, lexicon_dir: Path | None = None):
        self.lexicon = load_lexicon(lexicon_dir)
        self.nlp = build_pipeline(lexicon_dir, doc_annotations=False)  # it reads the components' plain tuples
        self.known_words = known_words(self.lexicon)

    def _make_docs(self, text: str, section: str, column_text: bool) -> list[Doc]:
        """The tokenized pieces of one report text (a piece continues in the section the one before ended in)."""
        docs: list[Doc] = []
        text = strip_markup(text)
        for piece in split_long_text(re.sub(r"\r\n?", "\n", text) if "\r" in text else text):
            doc = self.nlp.make_doc(piece)
            doc.user_data[TEXT_KEY] = piece  # the token view need not rebuild it
            doc.user_data[INITIAL_SECTION] = section
            doc.user_data[COLUMN_TEXT] = column_text
            if docs:
                doc.user_data[PREVIOUS_PIECE] = docs[-1]
            docs.append(doc)
        return docs

    def _report_docs(self, report: ReportText) -> list[Doc]:
        parts = [(value, section, column) for value, section, column in (
            (report.text, "findings", False), (report.findings, "findings", True),
            (report.impression, "impression", True)) if value and value.strip()]
        return [doc for value, section, column_text in parts for doc in self._make_docs(value, section, column_text)]

    def _parse_batch(self, reports: list[ReportText]) -> list[ParseResult]:
        """Each report's Docs, then each component over all of them, then each report's organ results; an error
        stops only its own report."""
        results = [ParseResult(None, None, 0.0) for _ in reports]
        docs = [_step(result, self._report_docs, report) for result, report in zip(results, reports)]
        for _, component in self.nlp.pipeline:
            docs = [_step(result, _each, component, report_docs) for result, report_docs in zip(results, docs)]
        for result, report_docs in zip(results, docs):
            result.report = _step(result, self._organ_results, report_docs)
        return results

    def parse_many(self, reports: Iterable[ReportText]) -> Iterator[ParseResult]:
        """:meth:`parse` for many reports, in batches (see the module docstring); one result per report, in order."""
        reports = iter(reports)
        while batch := list(islice(reports, BATCH_REPORTS)):
            with collector_paused():  # parsing makes no reference cycles: see heap.py
                results = self._parse_batch(batch)
            yield from results

    def parse(self, findings: str | None = None, impression: str | None = None,
              text: str | None = None) -> ParsedReport:
        """Parse a report given as FINDINGS / IMPRESSION texts, or one ``text`` with section headers.

        HTML and markdown are stripped first; a text the parser cannot read (another language) raises
        :class:`UnreadableReport` rather than parse as a normal report.
        """
        with collector_paused():
            result = self._parse_batch([ReportText(findings, impression, text)])[0]
        if result.error is not None:
            raise result.error
        return result.report

    def _organ_results(self, docs: list[Doc]) -> ParsedReport:
        """One report's organ results from its parsed Docs (raises :class:`UnreadableReport`, see :meth:`parse`)."""
        organs: dict[str, OrganReport] = {}
        certain: dict[str, set[str]] = {}
        unassigned: list[UnassignedSentence] = []
        sentence_count = 0
        check_readable([token_view(doc) for doc in docs], self.known_words)
        for doc in docs:
            sentence_count += self._collect(doc, organs, certain, unassigned)
        for organ, report in organs.items():  # (most lists are empty or need no filtering)
            if report.hedged_abnormalities and certain[organ]:
                report.hedged_abnormalities = [p for p in report.hedged_abnormalities if p not in certain[organ]]
            if report.negated_abnormalities and report.abnormalities:
                report.negated_abnormalities = [p for p in report.negated_abnormalities if p not in report.abnormalities]
        return ParsedReport(organs=organs, unassigned=unassigned, sentences=sentence_count)

    def sentence_states(self, findings: str) -> list[dict[str, str]]:
        """Per FINDINGS sentence: organ unit -> normal / abnormal / uncertain, from that sentence alone.

        The report is read whole (headings and the sentence before count), but each sentence is scored on
        its own; the development sets use this for sentences whose organ comes from context.
        """
        states: list[dict[str, str]] = []
        docs = self._make_docs(findings, "findings", True)
        for _, component in self.nlp.pipeline:
            docs = _each(component, docs)
        for doc in docs:
            per_sentence: dict[int, dict[str, list]] = {}
            for clause in doc._.report_clauses:
                organs = per_sentence.setdefault(clause.sentence, {})
                for unit, results in clause.units.items():
                    organs.setdefault(unit, []).extend(result for result in results if not result.negated)
            for index, (_, _, section) in enumerate(plain_spans(doc, "sentences")):
                if section in self.lexicon.report_sections:
                    states.append({unit: ("normal" if not stated else "uncertain" if all(r.hedged for r in stated)
                                          else "abnormal") for unit, stated in per_sentence.get(index, {}).items()})
        return states

    def _collect(self, doc: Doc, organs: dict[str, OrganReport], certain: dict[str, set[str]],
                 unassigned: list[UnassignedSentence]) -> int:
        accounted: set[int] = set()  # sentences grounded to an organ, or heading-only lines
        unplaced: dict[int, list[str]] = {}
        for clause in doc._.report_clauses:
            if clause.units or clause.heading:
                accounted.add(clause.sentence)
            if clause.unplaced:
                unplaced.setdefault(clause.sentence, []).extend(f.phrase for f in clause.unplaced if not f.negated)
            text, sources, rank = clause.text, clause.sources, SOURCE_RANK
            for unit, findings in clause.units.items():
                report = organs.get(unit)
                if report is None:
                    report = organs[unit] = OrganReport(unit, [], [], [], [])
                    certain[unit] = set()
                source = sources.get(unit, SOURCES[0])
                if rank[source] < rank[report.stated_by]:
                    report.stated_by = source
                if text and text not in report.texts:
                    report.texts.append(text)
                if findings and _add_findings(report, certain[unit], findings) and rank[source] < rank[report.abnormal_by]:
                    report.abnormal_by = source
        counted = 0
        for index, (start, end, section) in enumerate(plain_spans(doc, "sentences")):
            if section not in self.lexicon.report_sections:
                continue
            counted += 1
            if index not in accounted:
                unassigned.append(UnassignedSentence(section=section, text=tidy_text(doc, start, end),
                                                     abnormalities=list(dict.fromkeys(unplaced.get(index, [])))))
        return counted


def _step(result: ParseResult, work: Callable[..., T], *args: Any) -> T | None:
    """``work(*args)`` for one report of a batch, unless an earlier step stopped it; its time counts to the report, and
    an error stops only this report."""
    if result.error is not None:
        return None
    started = time.perf_counter()
    try:
        return work(*args)
    except Exception as error:  # one bad report must not stop the batch
        result.error = error
        return None
    finally:
        result.seconds += time.perf_counter() - started


def _each(component: Callable[[Doc], Doc], docs: list[Doc]) -> list[Doc]:
    return [component(doc) for doc in docs]


def _add_findings(report: OrganReport, certain: set[str], findings: list[FindingResult]) -> bool:
    """Add a clause's findings about the organ; ``certain``: its phrases stated at least once without a hedge.

    Returns whether one of them is stated (not negated), which the caller needs too.
    """
    stated = False
    for phrase, negated, hedged in findings:
        if negated:
            if phrase not in report.negated_abnormalities:
                report.negated_abnormalities.append(phrase)
            continue
        stated = True
        if phrase not in report.abnormalities:
            report.abnormalities.append(phrase)
        if hedged:
            if phrase not in report.hedged_abnormalities:
                report.hedged_abnormalities.append(phrase)
        else:
            certain.add(phrase)
    return stated


@lru_cache(maxsize=1)
def default_parser() -> ReportParser:
    """A process-wide parser with the packaged lexicon (built on first use)."""
    return ReportParser()


def parse_report(findings: str | None = None, impression: str | None = None, text: str | None = None) -> ParsedReport:
    """Parse one report with the packaged lexicon; see :class:`ReportParser` to reuse a custom one."""
    return default_parser().parse(findings=findings, impression=impression, text=text)
