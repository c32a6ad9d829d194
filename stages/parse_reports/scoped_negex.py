"""negspacy's NegEx with one change: spans are sorted into scopes in one pass.

``negspacy.negation.Negex.negex`` walks every span of ``span_keys`` once per scope boundary
(sentence or termination term), which dominates the parse time of long reports. This subclass
keeps negspacy's termsets, PhraseMatcher, pseudo-negation handling, boundaries and
``_apply_negation`` rule, and only replaces that scan by a bisect over the boundary starts.
"""
from __future__ import annotations

from bisect import bisect_right

from negspacy.negation import Negex
from spacy.language import Language
from spacy.tokens import Doc


class ScopedNegex(Negex):
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
