"""Pipeline component ``ctglip_report_sentences``: sentences that survive radiology style.

Sentences end at ".", "!", "?", ";" and at line breaks that start a new statement, but not inside
measurements ("2.3 x 1.8 cm"), after list numbers ("1.") or abbreviations ("approx."), or at a "?"
inside a sentence. Section headers, list markers and blank space are not part of a sentence.
-> ``doc.spans["sentences"]`` (labelled with their section) and the Doc's sentence starts.
"""
from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

import numpy
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.tokens import Doc

from stages.parse_reports.lexicon import Lexicon, load_lexicon
from stages.parse_reports.sections import SENTENCE_END
from stages.parse_reports.tokens import TokenView, store_spans, token_view


def set_sentence_starts(doc: Doc, starts: list[int]) -> None:
    """Make exactly ``starts`` (and token 0) the Doc's sentence starts."""
    if len(doc):
        sent_starts = numpy.full((len(doc), 1), -1, dtype="int64")
        sent_starts[[0, *starts]] = 1
        doc.from_array([SENT_START], sent_starts.astype("uint64"))


def header_tokens(doc: Doc) -> set[int]:
    return {i for span in doc.spans["section_headers"] for i in range(span.start, span.end)}


class ReportSentences:
    """Sentence spans and sentence starts (see the module docstring)."""

    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon

    def _sentence_starts(self, doc: Doc) -> list[int]:
        tokens = token_view(doc)
        starts = {0}
        for header in doc.spans["section_headers"]:
            starts.update((header.start, header.end))
        sentence_begin, count = 0, len(tokens.text)
        for index, text in enumerate(tokens.text):
            if index in starts:
                sentence_begin = index
            after = index + 1
            if after >= count:
                break
            if tokens.space[index] and "\n" in text:
                if self._breaks_line(tokens, index, after):
                    starts.add(after)
            elif text in SENTENCE_END and self._ends_sentence(tokens, index, sentence_begin):
                starts.add(after)
                sentence_begin = after
        return sorted(start for start in starts if start < count)

    def _breaks_line(self, tokens: TokenView, index: int, after: int) -> bool:
        following = tokens.text[after]
        return (tokens.text[index].count("\n") > 1 or index == 0 or tokens.text[index - 1] in SENTENCE_END | {":"}
                or following[:1].isupper() or following[:1].isdigit() or following in self.lexicon.list_markers)

    def _ends_sentence(self, tokens: TokenView, index: int, sentence_begin: int) -> bool:
        following = tokens.text[index + 1]
        following_lower = following[:1].islower() or following[:1].isdigit()
        if tokens.text[index] == "?" and following_lower:
            return False
        if tokens.text[index] == "." and index > 0:
            if tokens.like_num[index - 1] and len(tokens.text[index - 1]) <= 2 and index - 1 == sentence_begin:
                return False
            if tokens.lower[index - 1] in self.lexicon.abbreviations and following_lower:
                return False
        return True

    def __call__(self, doc: Doc) -> Doc:
        starts = self._sentence_starts(doc)
        headers = header_tokens(doc)
        sections = [(span.start, span.end, span.label_) for span in doc.spans["sections"]]
        section_starts = [start for start, _, _ in sections]
        tokens = token_view(doc)
        sentences = []
        for start, end in zip(starts, starts[1:] + [len(doc)]):
            start = _skip_markers(tokens, start, end, headers, self.lexicon.list_markers)
            while end > start and tokens.space[end - 1]:
                end -= 1
            if start >= end or not any(tokens.alpha[i] for i in range(start, end)):
                continue
            index = bisect_right(section_starts, start) - 1
            label = sections[index][2] if index >= 0 and start < sections[index][1] else "findings"
            sentences.append((start, end, label))
        set_sentence_starts(doc, starts)
        store_spans(doc, "sentences", sentences)
        return doc


def _skip_markers(tokens: TokenView, start: int, end: int, headers: set[int], markers: frozenset[str]) -> int:
    """First token of a sentence after headers, whitespace and list markers ("1.", "2)", "-")."""
    text = tokens.text
    while start < end and (start in headers or tokens.space[start] or text[start] in markers
                           or text[start] in {".", ")", ":"}
                           or (tokens.like_num[start] and start + 1 < end and text[start + 1] in {".", ")"})):
        start += 1
    return start


@Language.factory("ctglip_report_sentences", default_config={"lexicon_dir": ""})
def make_report_sentences(nlp: Language, name: str, *, lexicon_dir: str) -> ReportSentences:
    return ReportSentences(load_lexicon(Path(lexicon_dir) if lexicon_dir else None))
