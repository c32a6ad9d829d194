"""Report text wrapped in HTML or markdown, made plain before parsing.

Reports exported from RIS/PACS systems or pasted from web pages arrive as ``<p>Liver: <b>normal</b></p>``
or ``**Liver:** normal``. Tags and emphasis marks would otherwise break section headers, sentences and
organ words, and the report would parse as "nothing abnormal". Block tags (``<p>``, ``<br>``, ``<tr>``,
headings) become single line breaks (a page's paragraphs are its lines, not blank-line paragraphs), ``<li>``
a "- " list item, other tags are dropped, entities decoded (``&amp;`` -> ``&``);
markdown headers (``## Findings``), emphasis (``**``, ``__``, ``*x*``, ``_x_``, backticks) and ``*``/``+``
bullets lose their marks. Text without markup is returned unchanged (and cheaply: each pattern runs only
when the text holds the character it needs).
"""
from __future__ import annotations

import html
import re

TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\b[^<>]*>|<!--.*?-->", re.DOTALL)
BLOCK_TAGS = {"p", "br", "div", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
              "section", "article", "blockquote", "pre", "dt", "dd"}
ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")
MD_HEADER = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE)
MD_BULLET = re.compile(r"^([ \t]*)[*+][ \t]+", re.MULTILINE)
MD_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", re.DOTALL)
MD_EMPHASIS = re.compile(r"(?<![\w*])([*_])(?=[^\s*_])(.+?)(?<=[^\s*_])\1(?![\w*])")
MD_CODE = re.compile(r"`+([^`]*)`+")
MD_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$", re.MULTILINE)


def _tag(match: re.Match) -> str:
    name = (match.group(2) or "").lower()
    if name == "li":
        return "" if match.group(1) else "\n- "
    if name in BLOCK_TAGS:
        return "\n"
    return " " if name in {"td", "th"} else ""


def strip_markup(text: str) -> str:
    """Plain text of a report that may hold HTML or markdown (see the module docstring)."""
    if TAG.search(text):
        text = TAG.sub(_tag, text)
        text = re.sub(r"[ \t]*\n\s*", "\n", text).strip()
    if ENTITY.search(text):
        text = html.unescape(text).replace("\xa0", " ")
    if "#" in text:
        text = MD_HEADER.sub(r"\1", text)
    if "-" in text or "*" in text or "_" in text:
        text = MD_RULE.sub("", text)
    if "*" in text or "+" in text:
        text = MD_BULLET.sub(r"\1- ", text)
    if "*" in text or "_" in text:
        text = MD_STRONG.sub(r"\2", text)
        text = MD_EMPHASIS.sub(r"\2", text)
    return MD_CODE.sub(r"\1", text) if "`" in text else text
