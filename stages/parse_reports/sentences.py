"""Pipeline component ``ctglip_report_sentences``: sentences that survive radiology style.

Sentences end at ".", "!", "?", ";" and at line breaks that start a new statement, but not inside
measurements ("2.3 x 1.8 cm"), after list numbers ("1.") or abbreviations ("approx."), or at a "?"
inside a sentence or opening one ("? Small effusion", a query). Section headers, list markers and blank
space are not part of a sentence.
-> ``doc.spans["sentences"]`` (labelled with their section) and the Doc's sentence starts.
"""
from __future__ import annotations

from bisect import bisect_right
from itertools import compress
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from stages.parse_reports.lexicon import Lexicon, load_lexicon
from stages.parse_reports.sections import SENTENCE_END
from stages.parse_reports.tokens import TokenView, plain_spans, positions_of, store_sentence_starts, store_spans, token_view

LINE_END_MARKS = SENTENCE_END | {":"}  # a line ending in one of these ends its sentence


class ReportSentences:
    """Sentence spans and sentence starts (see the module docstring)."""

    def __init__(self, lexicon: Lexicon, doc_annotations: bool = True):
        self.lexicon, self.doc_annotations = lexicon, doc_annotations

    def _sentence_starts(self, doc: Doc, headers: list[tuple[int, int]]) -> list[int]:
        """Token 0, header bounds, and the token after each line break or end mark that ends a sentence.

        Only line breaks and end marks are visited (a tenth of the tokens); a token's sentence began right
        before it when that token is a start and it is not one itself.
        """
        tokens = token_view(doc)
        starts = {0}
        for start, end in headers:
            starts.update((start, end))
        count = len(tokens.text)
        text, space = tokens.text, tokens.space
        end_marks = positions_of(SENTENCE_END, text)
        line_breaks = [i for i in compress(range(count), space) if "\n" in text[i]]
        for index in sorted(end_marks + line_breaks):
            after = index + 1
            if after >= count:
                break
            if space[index] and "\n" in text[index]:
                if self._breaks_line(tokens, index, after):
                    starts.add(after)
            elif self._ends_sentence(tokens, index, starts):
                starts.add(after)
        return sorted(start for start in starts if start < count)

    def _breaks_line(self, tokens: TokenView, index: int, after: int) -> bool:
        following = tokens.text[after]
        return (tokens.text[index].count("\n") > 1 or index == 0 or tokens.text[index - 1] in LINE_END_MARKS
                or following[:1].isupper() or following[:1].isdigit() or following in self.lexicon.list_markers)

    def _ends_sentence(self, tokens: TokenView, index: int, starts: set[int]) -> bool:
        """Whether the end mark at ``index`` ends its sentence (``starts``: the sentence starts found so far).

        The checks on the next token and on the starts are made only for the marks they concern (few).
        """
        mark = tokens.text[index]
        if mark == "?":  # not inside a sentence, nor opening one ("? Small effusion": a query about what follows)
            return index not in starts and not _starts_lower(tokens.text[index + 1])
        if mark == "." and index > 0:
            if (tokens.like_num[index - 1] and len(tokens.text[index - 1]) <= 2
                    and index - 1 in starts and index not in starts):  # a list number opening its line
                return False
            if tokens.lower[index - 1] in self.lexicon.abbreviations and _starts_lower(tokens.text[index + 1]):
                return False
        return True

    def __call__(self, doc: Doc) -> Doc:
        header_spans = [(start, end) for start, end, _ in plain_spans(doc, "section_headers")]
        starts = self._sentence_starts(doc, header_spans)
        headers = {i for start, end in header_spans for i in range(start, end)}
        sections = plain_spans(doc, "sections")
        section_starts = [start for start, _, _ in sections]
        tokens = token_view(doc)
        sentences = []
        for start, end in zip(starts, starts[1:] + [len(doc)]):
            start = _skip_markers(tokens, start, end, headers, self.lexicon.list_markers)
            while end > start and tokens.space[end - 1]:
                end -= 1
            if start >= end or not any(tokens.alpha[start:end]):
                continue
            index = bisect_right(section_starts, start) - 1
            label = sections[index][2] if index >= 0 and start < sections[index][1] else "findings"
            sentences.append((start, end, label))
        store_sentence_starts(doc, starts, self.doc_annotations)
        store_spans(doc, "sentences", sentences, annotate=self.doc_annotations)
        return doc


def _starts_lower(word: str) -> bool:
    """Whether a word starts in lower case or with a digit (it goes on the sentence before it)."""
    return word[:1].islower() or word[:1].isdigit()


def _skip_markers(tokens: TokenView, start: int, end: int, headers: set[int], markers: frozenset[str]) -> int:
    """First token of a sentence after headers, whitespace and list markers ("1.", "2)", "-")."""
    text = tokens.text
    while start < end and (start in headers or tokens.space[start] or text[start] in markers
                           or text[start] in {".", ")", ":"}
                           or (tokens.like_num[start] and start + 1 < end and text[start + 1] in {".", ")"})):
        start += 1
    return start


@Language.factory("ctglip_report_sentences", default_config={"lexicon_dir": "", "doc_annotations": True})
def make_report_sentences(nlp: Language, name: str, *, lexicon_dir: str, doc_annotations: bool) -> ReportSentences:
    return ReportSentences(load_lexicon(Path(lexicon_dir) if lexicon_dir else None), doc_annotations)
