"""negspacy's NegEx with one change: spans are sorted into scopes in one pass.

``negspacy.negation.Negex.negex`` walks every span of ``span_keys`` once per scope boundary
(sentence or termination term), which dominates the parse time of long reports. This subclass
keeps negspacy's termsets, PhraseMatcher, pseudo-negation handling, boundaries and
``_apply_negation`` rule, and only replaces that scan by a bisect over the boundary starts (and reads the
sentence starts from the Doc's array rather than creating a span per sentence).
"""
from __future__ import annotations

from bisect import bisect_right

import numpy
from negspacy.negation import Negex
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.tokens import Doc


class ScopedNegex(Negex):
    def termination_boundaries(self, doc: Doc, terminating: list) -> list[tuple[int, int]]:
        """negspacy's boundaries, with the sentence starts read from one array instead of ``doc.sents`` spans."""
        starts = sorted(numpy.flatnonzero(doc.to_array(SENT_START) == 1).tolist() if len(doc) else [])
        starts = sorted(([0] if starts[:1] != [0] and len(doc) else []) + starts + [t[1] for t in terminating]
                        + [len(doc)])
        return list(zip(starts, starts[1:]))

    def negex(self, doc: Doc) -> Doc:
        preceding, following, terminating = self.process_negations(doc)
        boundaries = self.termination_boundaries(doc, terminating)
        starts = [start for start, _ in boundaries]
        spans_in: dict[int, list] = {}
        for key in self.span_keys:
            for span in doc.spans.get(key, []):
                index = bisect_right(starts, span.start) - 1
                if index >= 0 and span.end <= boundaries[index][1]:
                    spans_in.setdefault(index, []).append(span)
        for index, spans in spans_in.items():
            start, end = boundaries[index]
            sub_preceding = [match for match in preceding if start <= match[1] < end]
            sub_following = [match for match in following if start <= match[1] < end]
            for span in spans:
                self._apply_negation(span, sub_preceding, sub_following)
        return doc


@Language.factory("ctglip_negex", default_config={"neg_termset": {}, "ent_types": None, "extension_name": "negex",
                                                  "chunk_prefix": None, "span_keys": ["findings"]})
def make_scoped_negex(nlp: Language, name: str, *, neg_termset: dict[str, list[str]], ent_types: list[str] | None,
                      extension_name: str, chunk_prefix: list[str] | None, span_keys: list[str]) -> ScopedNegex:
    return ScopedNegex(nlp, name, neg_termset, ent_types=ent_types, extension_name=extension_name,
                       chunk_prefix=chunk_prefix, span_keys=span_keys)
