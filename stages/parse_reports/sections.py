"""Pipeline component ``ctglip_report_sections``: section headers and the section each token lies in.

Finds headers at line starts ("IMPRESSION:", a lone "FINDINGS" line) -> ``doc.spans["section_headers"]``
and ``doc.spans["sections"]``. In a FINDINGS or IMPRESSION column (``doc.user_data[COLUMN_TEXT]``) the
column names the section: an inline "History: ..." there covers its own sentence only, then the column's
section resumes. A piece of a report too long for one Doc (``doc.user_data[PREVIOUS_PIECE]``: the piece before)
starts in the section the piece before ended in.
"""
from __future__ import annotations

from pathlib import Path

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from stages.parse_reports.lexicon import Lexicon, load_lexicon
from stages.parse_reports.tokens import longest_first, plain_spans, store_spans

INITIAL_SECTION = "ctglip_initial_section"
COLUMN_TEXT = "ctglip_column_text"
PREVIOUS_PIECE = "ctglip_previous_piece"
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


def _last_section(doc: Doc) -> str:
    """The section a Doc ends in (the one it started in, if it has no section at all)."""
    sections = plain_spans(doc, "sections")
    return sections[-1][2] if sections else doc.user_data.get(INITIAL_SECTION, "findings")


class ReportSections:
    """Section headers and sections (see the module docstring)."""

    def __init__(self, nlp: Language, lexicon: Lexicon, doc_annotations: bool = True):
        self.report_sections, self.doc_annotations = lexicon.report_sections, doc_annotations
        self.matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        for phrase, kind in lexicon.section_headers.items():
            self.matcher.add(kind, [nlp.make_doc(phrase)])

    def __call__(self, doc: Doc) -> Doc:
        initial = doc.user_data.get(INITIAL_SECTION, "findings")
        previous = doc.user_data.get(PREVIOUS_PIECE)
        if previous is not None:  # its sections are known: the pipeline runs over the pieces in order
            initial = doc.user_data[INITIAL_SECTION] = _last_section(previous)
        headers: list[tuple[int, int, str]] = []
        strings = doc.vocab.strings
        for match_id, start, end in self.matcher(doc):
            if not _line_start(doc, start):
                continue
            if end < len(doc) and doc[end].text in HEADER_SUFFIXES:
                headers.append((start, end + 1, strings[match_id]))
            elif end == len(doc) or (doc[end].is_space and "\n" in doc[end].text):
                if doc[start:end].text.isupper():
                    headers.append((start, end, strings[match_id]))
        headers = longest_first(headers)
        column_text = doc.user_data.get(COLUMN_TEXT, False)
        sections: list[tuple[int, int, str]] = []
        cursor, kind = 0, initial
        for index, (start, end, label) in enumerate(headers):
            if start > cursor:
                sections.append((cursor, start, kind))
            cursor, kind = end, label
            if column_text and kind not in self.report_sections:
                limit = headers[index + 1][0] if index + 1 < len(headers) else len(doc)
                stop = _first_sentence_end(doc, cursor, limit)
                sections.append((cursor, stop, kind))
                cursor, kind = stop, initial
        if cursor < len(doc):
            sections.append((cursor, len(doc), kind))
        store_spans(doc, "section_headers", headers, annotate=self.doc_annotations)
        store_spans(doc, "sections", sections, annotate=self.doc_annotations)
        return doc


@Language.factory("ctglip_report_sections", default_config={"lexicon_dir": "", "doc_annotations": True})
def make_report_sections(nlp: Language, name: str, *, lexicon_dir: str, doc_annotations: bool) -> ReportSections:
    return ReportSections(nlp, load_lexicon(Path(lexicon_dir) if lexicon_dir else None), doc_annotations)
