"""Pipeline component ``ctglip_report_terms``: organ words, laterality words and abnormality phrases.

One ``PhraseMatcher`` on token norms (so plurals and British spellings match) -> ``doc.spans["organs"]``,
``["sides"]``, ``["findings"]``; a describing finding and the one it describes become one ("hypodense" +
"focal lesion", see ``heads`` in ``findings.json``).
"""
from __future__ import annotations

from pathlib import Path

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from stages.parse_reports.lexicon import Lexicon, load_lexicon
from stages.parse_reports.tokens import longest_first, store_spans, token_view

MODIFIER_WINDOW = 8
COORDINATORS = {"and", "or", "/"}
KINDS = ("ORGAN", "FINDING", "SIDE", "BLOCKED")  # in the order of the lists ``ReportTerms.__call__`` fills


class ReportTerms:
    """Organ, laterality and abnormality phrases, matched on token norms with one PhraseMatcher."""

    def __init__(self, nlp: Language, lexicon: Lexicon, doc_annotations: bool = True):
        self.lexicon, self.doc_annotations = lexicon, doc_annotations
        for variant, canonical in lexicon.word_norms.items():
            for form in {variant, variant.capitalize(), variant.upper()}:
                nlp.vocab[form].norm_ = canonical
        self.matcher = PhraseMatcher(nlp.vocab, attr="NORM")
        self.kinds: dict[int, tuple[int, str | None]] = {}  # match id -> (KINDS index, payload)
        # the findings' ``heads`` as (describing, described) -> joined: one look-up per neighbouring pair
        self.wholes = {(describing, described): whole for describing, entry in lexicon.findings.items()
                       for described, whole in entry.heads.items()}
        self.describing = frozenset(describing for describing, _ in self.wholes)
        for index, term in enumerate(lexicon.organ_terms):
            self._add("ORGAN", str(index), [term.text], nlp)
        for key, entry in lexicon.findings.items():
            self._add("FINDING", key, entry.surfaces, nlp)
        for word, side in lexicon.side_words.items():
            self._add("SIDE", side, [word], nlp)
        self._add("BLOCKED", "", lexicon.blocked_terms, nlp)

    def _add(self, kind: str, payload: str, texts: tuple[str, ...] | list[str], nlp: Language) -> None:
        key = f"{kind}:{payload}"
        patterns = []
        for text in texts:
            variants = {text}
            if "-" in text:
                variants |= {text.replace("-", " "), text.replace("-", "")}
            patterns += [nlp.make_doc(variant) for variant in variants]
        self.matcher.add(key, patterns)
        self.kinds[nlp.vocab.strings[key]] = (KINDS.index(kind), payload if kind != "BLOCKED" else None)

    def __call__(self, doc: Doc) -> Doc:
        organs, findings, sides, blocked = matched = ([], [], [], [])
        for match_id, start, end in self.matcher(doc):
            kind, payload = self.kinds[match_id]
            matched[kind].append((start, end, payload))
        covered: set[int] = set()
        findings = longest_first(findings, covered)
        organs, organ_tokens = _organ_words(organs + blocked, covered)
        sides = [side for side in sides if side[0] not in organ_tokens and side[0] not in covered]
        word_tokens = organ_tokens | {i for start, end, _ in sides for i in range(start, end)}
        annotate = self.doc_annotations
        store_spans(doc, "findings", self._join_described(doc, findings, word_tokens), "FINDING", annotate)
        store_spans(doc, "organs", organs, "ORGAN", annotate)
        store_spans(doc, "sides", sides, annotate=annotate)
        return doc

    def _join_described(self, doc: Doc, findings: list[tuple[int, int, str]],
                        word_tokens: set[int]) -> list[tuple[int, int, str]]:
        """One finding for a describing finding and the finding it describes ("hypodense" + "focal lesion").

        Only modifiers, sizes, side and organ words may stand between them ("hypodense right renal lesion");
        the organ and side words keep grounding the joined finding.
        """
        joined: list[tuple[int, int, str]] = []
        index = 0
        while index < len(findings):
            start, end, key = findings[index]
            if index + 1 < len(findings) and key in self.describing:
                next_start, next_end, next_key = findings[index + 1]
                whole = self.wholes.get((key, next_key))
                if whole and next_start - end <= MODIFIER_WINDOW and self._modifiers_only(
                        doc, end, next_start, word_tokens):
                    joined.append((start, next_end, whole))
                    index += 2
                    continue
            joined.append((start, end, key))
            index += 1
        return joined

    def _modifiers_only(self, doc: Doc, start: int, end: int, word_tokens: set[int]) -> bool:
        """Modifiers, numbers, organ and side words, and "and"/"or" between two of the latter ("hepatic and renal")."""
        tokens = token_view(doc)
        modifiers = self.lexicon.finding_modifiers
        return all(i in word_tokens or tokens.like_num[i] or tokens.lower[i] in modifiers
                   or (tokens.lower[i] in COORDINATORS and i - 1 in word_tokens and i + 1 in word_tokens)
                   for i in range(start, end))


def _organ_words(organs_and_blocked: list[tuple[int, int, str | None]],
                 covered: set[int]) -> tuple[list[tuple[int, int, str]], set[int]]:
    """The organ matches that win over the blocked phrases and lie not wholly inside a finding, and their tokens.

    The tokens are longest_first's, less those of the few matches dropped here (kept matches never overlap).
    """
    organs, tokens = [], set()
    for organ in longest_first(organs_and_blocked, tokens):
        start, end, index = organ
        if index is None or covered.issuperset(range(start, end)):
            tokens.difference_update(range(start, end))
        else:
            organs.append(organ)
    return organs, tokens


@Language.factory("ctglip_report_terms", default_config={"lexicon_dir": "", "doc_annotations": True})
def make_report_terms(nlp: Language, name: str, *, lexicon_dir: str, doc_annotations: bool) -> ReportTerms:
    return ReportTerms(nlp, load_lexicon(Path(lexicon_dir) if lexicon_dir else None), doc_annotations)
