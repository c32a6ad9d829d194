"""Plain-Python copies of the token attributes the rule components read again and again.

Indexing a spaCy ``Doc`` creates a ``Token`` object per access; the clause and grounding rules look
at neighbouring tokens many times, so they read these lists instead (computed once per Doc).
"""
from __future__ import annotations

from dataclasses import dataclass

from spacy.tokens import Doc

VIEW_KEY = "ctglip_token_view"


@dataclass(frozen=True)
class TokenView:
    text: list[str]
    lower: list[str]
    norm: list[str]
    punct: list[bool]
    space: list[bool]
    alpha: list[bool]
    like_num: list[bool]
    whitespace: list[str]


def token_view(doc: Doc) -> TokenView:
    """The Doc's cached view (built on first use)."""
    view = doc.user_data.get(VIEW_KEY)
    if view is None or len(view.text) != len(doc):
        rows = [(t.text, t.lower_, t.norm_, t.is_punct, t.is_space, t.is_alpha, t.like_num, t.whitespace_) for t in doc]
        view = TokenView(*(list(column) for column in zip(*rows))) if rows else TokenView(*([] for _ in range(8)))
        doc.user_data[VIEW_KEY] = view
    return view
