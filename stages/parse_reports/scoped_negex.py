"""negspacy's NegEx with one change: spans are placed in scopes by bisects, as plain tuples.

``negspacy.negation.Negex.negex`` walks every span of ``span_keys`` once per scope boundary
(sentence or termination term) and creates a ``Span`` for each visit, which dominated the parse time
of long reports. This subclass keeps negspacy's termsets, PhraseMatcher, pseudo-negation handling,
boundaries and its negation rule (a preceding term before the span or a following term after it, in
the same scope), but places the terms with a bisect over the boundary starts (per scope, only the first
preceding term and the furthest-reaching following term matter), visits only the spans of the scopes
holding a term, reads the spans as the ``(start, end, value)`` tuples the terms component keeps, reads
the sentence starts from the Doc's array, and creates a ``Span`` only to set the extension on the spans
it flags. The flagged ``(start, end)`` pairs are kept for the grounding too (:func:`tokens.flagged_spans`),
which then reads no ``Span`` either. negspacy's ``ent_types`` and ``chunk_prefix`` options are not offered.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right

from negspacy.negation import Negex
from spacy.language import Language
from spacy.tokens import Doc

from stages.parse_reports.tokens import TokenView, plain_spans, sentence_starts, store_flags, token_view


class ScopedNegex(Negex):
    def __init__(self, *args, doc_annotations: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.doc_annotations = doc_annotations
        self.pseudo_id = self.nlp.vocab.strings["pseudo"]
        self.term_ids = [self.nlp.vocab.strings[kind] for kind in ("Preceding", "Following", "Termination")]

    def process_negations(self, doc: Doc) -> tuple[list[tuple[int, int, int]], ...]:
        """negspacy's preceding, following and terminating terms, a term starting inside or right after a pseudo
        negation left out, and a preceding term inside a following one that a "(" or "," ends; the match types
        compared by id (negspacy looks each match's name up, twice)."""
        matches = self.matcher(doc)
        masked = {i for match_id, start, end in matches if match_id == self.pseudo_id for i in range(start, end + 1)}
        found: dict[int, list[tuple[int, int, int]]] = {match_id: [] for match_id in self.term_ids}
        for match in matches:
            if match[0] in found and match[1] not in masked:
                found[match[0]].append(match)
        preceding, following = self.term_ids[:2]
        if found[following]:
            tokens = token_view(doc)
            found[following] = [match for match in found[following] if not _glued_query(tokens, match[1])]
            if found[preceding]:  # "not" in "Gallbladder is not visualized (operated)" denies what it follows only
                inside = {i for _, start, end in found[following] if end < len(tokens.text) and tokens.text[end] in "(,"
                          for i in range(start, end)}
                found[preceding] = [match for match in found[preceding] if match[1] not in inside]
        return tuple(found.values())

    def scope_bounds(self, doc: Doc, terminating: list) -> list[int]:
        """negspacy's boundaries as sorted points, a scope running from one to the next: the sentence starts the
        clause component kept (instead of ``doc.sents`` spans), the terminating terms' starts and the Doc's end."""
        return sorted({*sentence_starts(doc), *(term[1] for term in terminating), len(doc)})

    def negex(self, doc: Doc) -> Doc:
        """Only the scopes holding a preceding or following term are visited, each for the spans that start in it
        (most scopes hold none): a span is flagged where negspacy flags it, but placed by two bisects per scope."""
        preceding, following, terminating = self.process_negations(doc)
        bounds = self.scope_bounds(doc, terminating)
        first_preceding: dict[int, int] = {}  # scope -> start of its first preceding term
        last_following: dict[int, int] = {}  # scope -> furthest end of its following terms
        for _, start, _ in preceding:
            scope = bisect_right(bounds, start) - 1
            first_preceding[scope] = min(start, first_preceding.get(scope, start))
        for _, start, end in following:
            scope = bisect_right(bounds, start) - 1
            last_following[scope] = max(end, last_following.get(scope, end))
        flagged: list[tuple[int, int]] = []
        for key in self.span_keys:
            spans = sorted(plain_spans(doc, key))
            span_starts = [start for start, _, _ in spans]
            for scope in first_preceding.keys() | last_following.keys():
                scope_start, scope_end = bounds[scope], bounds[scope + 1]
                preceding_start, following_end = first_preceding.get(scope, scope_end), last_following.get(scope, 0)
                for start, end, _ in spans[bisect_left(span_starts, scope_start):bisect_left(span_starts, scope_end)]:
                    if end <= scope_end and (preceding_start < start or following_end > end):
                        flagged.append((start, end))
        if self.doc_annotations:
            for start, end in flagged:
                doc[start:end]._.set(self.extension_name, True)
        store_flags(doc, self.extension_name, flagged)
        return doc


def _glued_query(tokens: TokenView, index: int) -> bool:
    """A "?" glued to the word after it ("consolidation ?infection", UK style) queries that word only: it is no
    following term for what stands before it ("cardiomegaly?" is one)."""
    after = index + 1
    return (tokens.text[index] == "?" and after < len(tokens.text) and tokens.alpha[after]
            and tokens.idx[after] == tokens.idx[index] + 1)


@Language.factory("ctglip_negex", default_config={"neg_termset": {}, "extension_name": "negex",
                                                  "span_keys": ["findings"], "doc_annotations": True})
def make_scoped_negex(nlp: Language, name: str, *, neg_termset: dict[str, list[str]], extension_name: str,
                      span_keys: list[str], doc_annotations: bool) -> ScopedNegex:
    return ScopedNegex(nlp, name, neg_termset, extension_name=extension_name, span_keys=span_keys,
                       doc_annotations=doc_annotations)
