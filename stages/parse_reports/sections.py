"""Pipeline component ``ctglip_report_sections``: section headers and the section each token lies in.

Finds headers at line starts ("IMPRESSION:", a lone "FINDINGS" line) -> ``doc.spans["section_headers"]``
and ``doc.spans["sections"]``. In a FINDINGS or IMPRESSION column (``doc.user_data[COLUMN_TEXT]``) the
column names the section: an inline "History: ..." there covers its own sentence only, then the column's
section resumes.
"""
from __future__ import annotations

from pathlib import Path

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from stages.parse_reports.lexicon import Lexicon, load_lexicon
from stages.parse_reports.tokens import keep_spans

INITIAL_SECTION = "ctglip_initial_section"
COLUMN_TEXT = "ctglip_column_text"
SENTENCE_END = {".", "!", "?", ";"}
HEADER_SUFFIXES = {":", "-", "–"}


def _line_start(doc: Doc, index: int) -> bool:
    if index == 0:
        return True
    previous = doc[index - 1]
    return ("\n" in previous.text and previous.is_space) or previous.text in SENTENCE_END


def _first_sentence_end(doc: Doc, start: int, limit: int) -> int:
    for index in range(start, limit):
        token = doc[index]
        if token.text in {".", "!", "?"} or (token.is_space and "\n" in token.text and index > start):
            return index + 1
    return limit


class ReportSections:
    """Section headers and sections (see the module docstring)."""

    def __init__(self, nlp: Language, lexicon: Lexicon):
        self.report_sections = lexicon.report_sections
        self.matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        for phrase, kind in lexicon.section_headers.items():
            self.matcher.add(kind, [nlp.make_doc(phrase)])

    def __call__(self, doc: Doc) -> Doc:
        initial = doc.user_data.get(INITIAL_SECTION, "findings")
        headers: list[Span] = []
        for match_id, start, end in self.matcher(doc):
            if not _line_start(doc, start):
                continue
            if end < len(doc) and doc[end].text in HEADER_SUFFIXES:
                headers.append(Span(doc, start, end + 1, label=match_id))
            elif end == len(doc) or (doc[end].is_space and "\n" in doc[end].text):
                if doc[start:end].text.isupper():
                    headers.append(Span(doc, start, end, label=match_id))
        headers = filter_spans(headers)
        column_text = doc.user_data.get(COLUMN_TEXT, False)
        sections: list[Span] = []
        cursor, kind = 0, initial
        for index, header in enumerate(headers):
            if header.start > cursor:
                sections.append(Span(doc, cursor, header.start, label=kind))
            cursor, kind = header.end, header.label_
            if column_text and kind not in self.report_sections:
                limit = headers[index + 1].start if index + 1 < len(headers) else len(doc)
                stop = _first_sentence_end(doc, cursor, limit)
                sections.append(Span(doc, cursor, stop, label=kind))
                cursor, kind = stop, initial
        if cursor < len(doc):
            sections.append(Span(doc, cursor, len(doc), label=kind))
        doc.spans["section_headers"] = headers
        doc.spans["sections"] = sections
        keep_spans(doc, "sections", [(span.start, span.end, span.label_) for span in sections])
        return doc


@Language.factory("ctglip_report_sections", default_config={"lexicon_dir": ""})
def make_report_sections(nlp: Language, name: str, *, lexicon_dir: str) -> ReportSections:
    return ReportSections(nlp, load_lexicon(Path(lexicon_dir) if lexicon_dir else None))
