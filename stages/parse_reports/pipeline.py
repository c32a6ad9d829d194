"""The spaCy 3.8 pipeline that reads a radiology report.

``spacy.blank("en")`` tokenizer, then registered components (``Language.factory`` with a
``default_config``, as spaCy's own rule components), one module each:

1. ``ctglip_report_sections`` (:mod:`sections`) - FINDINGS / IMPRESSION / TECHNIQUE ... headers -> ``doc.spans["sections"]``
2. ``ctglip_report_terms`` (:mod:`terms`) - organ, laterality and abnormality phrases -> ``doc.spans["organs"]``,
   ``["sides"]``, ``["findings"]``
3. ``ctglip_report_sentences`` (:mod:`sentences`) - sentences that survive radiology style -> ``doc.spans["sentences"]``
4. ``ctglip_report_clauses`` (:mod:`clauses`) - clauses where one sentence talks about several organs; clause
   starts become sentence starts so NegEx scopes stop there -> ``doc.spans["clauses"]``
5. ``ctglip_negex`` (negspacy's NegEx, see :mod:`scoped_negex`; radiology-extended termset) over
   ``doc.spans["findings"]`` -> ``span._.negex``
6. the same with the hedging termset -> ``span._.hedged``
7. ``ctglip_report_grounding`` - organ units per clause (see :mod:`grounding`) -> ``doc._.report_clauses``

The components pass each other plain tuples (see :mod:`tokens`); ``doc_annotations`` (on by default) also
writes the spaCy annotations named above, for readers of the Doc. :class:`parser.ReportParser` turns it off.
"""
from __future__ import annotations

from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from stages.parse_reports import clauses, scoped_negex, sections, sentences, terms  # noqa: F401  (register factories)
from stages.parse_reports.grounding import ground_doc
from stages.parse_reports.grounding_rules import GroundingRules
from stages.parse_reports.lexicon import Lexicon, load_lexicon

COMPONENTS = ("ctglip_report_sections", "ctglip_report_terms", "ctglip_report_sentences", "ctglip_report_clauses",
              "negation", "hedging", "ctglip_report_grounding")

if not Doc.has_extension("report_clauses"):
    Doc.set_extension("report_clauses", default=None)


class ReportGrounding:
    """Grounds every clause of the report sections to organ units (see :func:`grounding.ground_doc`)."""

    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon
        self.rules = GroundingRules(lexicon)

    def __call__(self, doc: Doc) -> Doc:
        doc._.report_clauses = ground_doc(doc, self.rules)
        return doc


@Language.factory("ctglip_report_grounding", default_config={"lexicon_dir": ""})
def make_report_grounding(nlp: Language, name: str, *, lexicon_dir: str) -> ReportGrounding:
    return ReportGrounding(load_lexicon(Path(lexicon_dir) if lexicon_dir else None))


def build_pipeline(lexicon_dir: Path | None = None, doc_annotations: bool = True) -> Language:
    """A fresh report pipeline; every component is rebuilt from ``nlp.config`` plus these factories.

    ``doc_annotations=False``: no ``doc.spans``, sentence starts nor ``span._`` flags, only the grounded clauses
    (``doc._.report_clauses``); the same results in two thirds of the time.
    """
    lexicon = load_lexicon(lexicon_dir)
    config = {"lexicon_dir": str(lexicon_dir) if lexicon_dir else ""}
    annotations = {"doc_annotations": doc_annotations}
    nlp = spacy.blank("en")
    nlp.max_length = 2_000_000
    for name in ("ctglip_report_sections", "ctglip_report_terms", "ctglip_report_sentences", "ctglip_report_clauses"):
        nlp.add_pipe(name, config={**config, **annotations})
    nlp.add_pipe("ctglip_negex", name="negation", config={"neg_termset": dict(lexicon.negation), **annotations})
    nlp.add_pipe("ctglip_negex", name="hedging", config={"neg_termset": dict(lexicon.hedging),
                                                          "extension_name": "hedged", **annotations})
    nlp.add_pipe("ctglip_report_grounding", config=config)
    return nlp
