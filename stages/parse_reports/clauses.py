"""Pipeline component ``ctglip_report_clauses``: a sentence cut into clauses where it talks about several organs.

"Liver is normal, the spleen is enlarged" -> two clauses; "B or C is seen in the liver" stays one. A
sentence is cut at a clause word (",", "and", "but", ...) only when each side is a statement about an
organ of its own. Clause starts become sentence starts too, so NegEx scopes stop there.
-> ``doc.spans["clauses"]`` (labelled with their sentence's section).
"""
from __future__ import annotations

from bisect import bisect_left
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from stages.parse_reports.lexicon import Lexicon, load_lexicon
from stages.parse_reports.tokens import (any_between, plain_spans, positions_of, sentence_starts, store_sentence_starts,
                                         store_spans, token_view)


class ReportClauses:
    """Clause spans; clause starts join the Doc's sentence starts."""

    def __init__(self, lexicon: Lexicon, doc_annotations: bool = True):
        self.lexicon, self.doc_annotations = lexicon, doc_annotations
        self.organ_findings = frozenset(key for key, finding in lexicon.findings.items() if finding.organs)

    def __call__(self, doc: Doc) -> Doc:
        features = _TokenFeatures(doc, self.lexicon, self.organ_findings)
        clauses = [(start, end, section) for sentence_start, sentence_end, section in plain_spans(doc, "sentences")
                   for start, end in features.split_clauses(sentence_start, sentence_end)]
        store_sentence_starts(doc, sentence_starts(doc) + [start for start, _, _ in clauses], self.doc_annotations)
        store_spans(doc, "clauses", clauses, annotate=self.doc_annotations)
        return doc


class _TokenFeatures:
    """Per-token facts the clause splitter needs: organ references, predicates, findings.

    Each is a sorted list of token indices, so "is there one between a and b" is one bisect.
    """

    def __init__(self, doc: Doc, lexicon: Lexicon, organ_findings: frozenset[str]):
        """``organ_findings``: the keys of the findings that name their organ (they refer to it, as organs do)."""
        self.lexicon = lexicon
        self.tokens = token_view(doc)
        findings = plain_spans(doc, "findings")
        organ_ref = {start for start, _, _ in plain_spans(doc, "organs")}
        organ_ref.update(start for start, _, _ in plain_spans(doc, "sides"))
        organ_ref.update(start for start, _, key in findings if key in organ_findings)
        in_finding = {i for start, end, _ in findings for i in range(start, end)}
        self.organ_ref, self.finding = sorted(organ_ref), sorted({start for start, _, _ in findings})
        self.predicate = [i for i in positions_of(lexicon.predicates, self.tokens.lower) if i not in in_finding]
        self.clause_break = positions_of(lexicon.clause_breaks, self.tokens.lower)

    def _complete_left(self, start: int, end: int) -> bool:
        return any_between(self.organ_ref, start, end) and (
            any_between(self.predicate, start, end) or any_between(self.finding, start, end))

    def _complete_right(self, start: int, end: int) -> bool:
        """A statement of its own: names an organ and has a predicate, and does not go on a list ("B or C is seen")."""
        first = bisect_left(self.predicate, start)
        if first == len(self.predicate) or self.predicate[first] >= end or not any_between(self.organ_ref, start, end):
            return False
        return not any(word in self.lexicon.no_break_after for word in self.tokens.lower[start:self.predicate[first]])

    def split_clauses(self, start: int, end: int) -> list[tuple[int, int]]:
        """Split a sentence where each side is a statement about an organ of its own."""
        cuts = self.clause_break[bisect_left(self.clause_break, start + 1):bisect_left(self.clause_break, end - 1)]
        if not cuts:
            return [(start, end)]
        pieces = [(a, b) for a, b in zip([start] + cuts, cuts + [end]) if a < b]
        forward: list[tuple[int, int]] = []
        carry: int | None = None
        for a, b in pieces:
            a = carry if carry is not None else a
            carry = None
            names_organ_only = (any_between(self.organ_ref, a, b) and not any_between(self.predicate, a, b)
                                and not any_between(self.finding, a, b))
            if names_organ_only and b < end:
                carry = a
                continue
            forward.append((a, b))
        clauses = [forward[0]]
        for a, b in forward[1:]:
            last_a, last_b = clauses[-1]
            if self._complete_left(last_a, last_b) and self._complete_right(a, b):
                clauses.append((a, b))
            else:
                clauses[-1] = (last_a, b)
        return clauses


@Language.factory("ctglip_report_clauses", default_config={"lexicon_dir": "", "doc_annotations": True})
def make_report_clauses(nlp: Language, name: str, *, lexicon_dir: str, doc_annotations: bool) -> ReportClauses:
    return ReportClauses(load_lexicon(Path(lexicon_dir) if lexicon_dir else None), doc_annotations)
