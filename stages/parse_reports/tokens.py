"""Plain-Python copies of the token attributes and spans the rule components read again and again.

Indexing a spaCy ``Doc`` creates a ``Token`` object per access; the clause and grounding rules look
at neighbouring tokens many times, so they read these columns instead (computed once per Doc). The
columns come from one ``Doc.to_array`` call and a per-vocabulary table of word attributes, so building
them never creates a ``Token`` either (a report repeats few distinct words); the text is the one the
parser made the Doc from (``TEXT_KEY``), else joined from the tokens. Likewise the components
keep the spans they write as ``(start, end, value)`` tuples beside ``doc.spans`` (a ``Span`` object is
created on every read of a span group), the sentence starts they set, and the NegEx components the
``(start, end)`` of the spans they flag.

Writing the spaCy annotations themselves (``doc.spans``, the Doc's sentence starts, ``span._`` flags) is a
third of the parse time and no component reads them: a pipeline built with ``doc_annotations=False`` (the
report parser's) keeps only these tuples, and its results are the same.
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from itertools import chain, compress
from operator import itemgetter
from typing import Any

import numpy
from spacy.attrs import IDX, ORTH, SENT_START, SPACY
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

VIEW_KEY = "ctglip_token_view"
SPANS_KEY = "ctglip_plain_spans"
STARTS_KEY = "ctglip_sentence_starts"
FLAGS_KEY = "ctglip_span_flags"
TEXT_KEY = "ctglip_text"  # the text a Doc was made from, where its maker keeps it (``doc.text`` is rebuilt per call)
_WORDS: dict[int, tuple[Vocab, dict[int, tuple[str, str, bool, bool, bool, bool]]]] = {}
_WHITESPACE = ("", " ")


@dataclass(frozen=True)
class TokenView:
    """Per-token columns of one Doc (tuples: read, never changed)."""

    text: tuple[str, ...]
    lower: tuple[str, ...]
    punct: tuple[bool, ...]
    space: tuple[bool, ...]
    alpha: tuple[bool, ...]
    like_num: tuple[bool, ...]
    idx: list[int]  # character offset of each token
    string: str  # the Doc's text (``doc.text`` creates a Token per token)

    def text_of(self, start: int, end: int) -> str:
        """Text of tokens ``start`` to ``end`` (exclusive), without the last token's trailing whitespace."""
        return self.string[self.idx[start]:self.idx[end - 1] + len(self.text[end - 1])] if end > start else ""


def _word_table(vocab: Vocab) -> dict[int, tuple[str, str, bool, bool, bool, bool]]:
    """For one vocabulary (kept alive here): orth id -> (text, lower, is_punct, is_space, is_alpha, like_num)."""
    entry = _WORDS.get(id(vocab))
    if entry is None or entry[0] is not vocab:
        entry = _WORDS[id(vocab)] = (vocab, {})
    return entry[1]


def token_view(doc: Doc) -> TokenView:
    """The Doc's cached view (built on first use)."""
    view = doc.user_data.get(VIEW_KEY)
    if view is not None and len(view.text) == len(doc):
        return view
    words, vocab = _word_table(doc.vocab), doc.vocab
    orths, idx = doc.to_array([ORTH, IDX]).T.tolist() if len(doc) else ([],) * 2
    try:
        facts = list(map(words.__getitem__, orths))
    except KeyError:  # a word this vocabulary's table has not seen yet
        for orth in set(orths) - words.keys():
            lexeme = vocab[orth]
            words[orth] = (lexeme.orth_, lexeme.lower_, lexeme.is_punct, lexeme.is_space, lexeme.is_alpha,
                           lexeme.like_num)
        facts = list(map(words.__getitem__, orths))
    text, lower, punct, space, alpha, like_num = zip(*facts) if facts else ((),) * 6
    string = doc.user_data.get(TEXT_KEY)
    if string is None:  # a Doc made elsewhere: its text from its tokens and their trailing spaces
        spaced = doc.to_array(SPACY).tolist()
        string = "".join(chain.from_iterable(zip(text, map(_WHITESPACE.__getitem__, spaced))))
    view = TokenView(text=text, lower=lower, punct=punct, space=space, alpha=alpha, like_num=like_num, idx=idx,
                     string=string)
    doc.user_data[VIEW_KEY] = view
    return view


def store_spans(doc: Doc, key: str, items: list[tuple[int, int, str]], kb_label: str | None = None,
                annotate: bool = True) -> None:
    """Keep ``(start, end, value)`` for the rule components and, if ``annotate``, write ``doc.spans[key]`` from them.

    ``value`` is each span's label, or its ``kb_id`` when ``kb_label`` gives the one label of the group. Labels
    are passed as string ids (a ``Span`` made from a string label costs twice as much).
    """
    keep_spans(doc, key, items)
    if not annotate:
        return
    strings = doc.vocab.strings
    ids = {value: strings.add(value) for value in {item[2] for item in items} | {kb_label or ""}}
    if kb_label is None:
        doc.spans[key] = [Span(doc, start, end, label=ids[value]) for start, end, value in items]
    else:
        label = ids[kb_label]
        doc.spans[key] = [Span(doc, start, end, label=label, kb_id=ids[value]) for start, end, value in items]


def keep_spans(doc: Doc, key: str, items: list[tuple[int, int, str]]) -> None:
    """Keep ``(start, end, value)`` of a span group a component wrote itself, for :func:`plain_spans`."""
    doc.user_data.setdefault(SPANS_KEY, {})[key] = list(items)


def plain_spans(doc: Doc, key: str) -> list[tuple[int, int, str]]:
    """``(start, end, kb_id or label)`` of ``doc.spans[key]``, without creating a Span where a component kept them."""
    cached = doc.user_data.get(SPANS_KEY, {}).get(key)
    if cached is None:
        cached = [(span.start, span.end, span.kb_id_ or span.label_) for span in doc.spans[key]]
    return cached


def store_sentence_starts(doc: Doc, starts: list[int], annotate: bool = True) -> None:
    """Keep the sorted sentence starts (token 0 included) and, if ``annotate``, make them the Doc's own."""
    starts = sorted({0, *starts}) if len(doc) else []
    doc.user_data[STARTS_KEY] = starts
    if annotate and starts:
        sent_starts = numpy.full((len(doc), 1), -1, dtype="int64")
        sent_starts[starts] = 1
        doc.from_array([SENT_START], sent_starts.astype("uint64"))


def sentence_starts(doc: Doc) -> list[int]:
    """The sorted sentence starts a component kept, else the Doc's own (token 0 included)."""
    starts = doc.user_data.get(STARTS_KEY)
    if starts is None:
        starts = sorted({0, *numpy.flatnonzero(doc.to_array(SENT_START) == 1).tolist()}) if len(doc) else []
    return starts


def store_flags(doc: Doc, name: str, spans: list[tuple[int, int]]) -> None:
    """Keep the ``(start, end)`` of the spans a component set the extension ``name`` on."""
    doc.user_data.setdefault(FLAGS_KEY, {})[name] = set(spans)


def flagged_spans(doc: Doc, name: str, key: str) -> set[tuple[int, int]]:
    """``(start, end)`` of the spans of ``doc.spans[key]`` flagged with the extension ``name``, without creating a
    Span where a component kept them."""
    flagged = doc.user_data.get(FLAGS_KEY, {}).get(name)
    if flagged is None:
        flagged = {(span.start, span.end) for span in doc.spans[key] if span._.get(name)}
    return flagged


def longest_first(matches: list[tuple[int, int, Any]], covered: set[int] | None = None) -> list[tuple[int, int, Any]]:
    """Non-overlapping matches, the (first) longest winning, in text order: ``spacy.util.filter_spans`` on tuples.

    Most matches are one token long and sort last, in the matcher's order: only the longer ones are sorted
    (a match is never empty). ``covered``, an empty set if given, receives the kept matches' tokens (the
    caller need not collect them again).
    """
    kept, seen = [], set() if covered is None else covered
    for match in sorted([match for match in matches if match[1] - match[0] > 1], key=_longest_then_first):
        if match[0] not in seen and match[1] - 1 not in seen:
            kept.append(match)
            seen.update(range(match[0], match[1]))
    for match in matches:
        if match[1] - match[0] == 1 and match[0] not in seen:
            kept.append(match)
            seen.add(match[0])
    return sorted(kept, key=itemgetter(0))


def _longest_then_first(match: tuple[int, int, Any]) -> tuple[int, int]:
    """Sort key: longest first, then earliest start; equal keys keep the matcher's order (a stable sort)."""
    return match[0] - match[1], match[0]


def positions_of(words: frozenset[str] | set[str], column: tuple[str, ...]) -> list[int]:
    """Indices of the tokens whose text in ``column`` is one of ``words`` (one C-level pass over the Doc)."""
    return list(compress(range(len(column)), map(words.__contains__, column)))


def any_between(positions: list[int], start: int, end: int) -> bool:
    """Whether one of the sorted token ``positions`` lies in ``start`` .. ``end`` (exclusive): one bisect."""
    index = bisect_left(positions, start)
    return index < len(positions) and positions[index] < end
