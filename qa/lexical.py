"""Lexical side of retrieval: biomedical-aware terms for SQLite FTS5 (BM25) over whole records.

Exact terms -- drug names, genes, acronyms such as IL-6, CRP, CD4+ -- are what
lexical search gets right and embeddings blur, so the tokenizer keeps them:
"IL-6" is indexed as ``il6`` (matching "IL6") plus its parts ``il`` and ``6``;
"CD4+" adds ``cd4plus``; Greek letters are spelled out ("TNF-α" -> ``tnfalpha``).
FTS5's porter tokenizer then stems the words. Documents and questions go
through the same function, so they always agree.
"""

from __future__ import annotations

import re
import unicodedata

# FTS5 table kept inside passages.sqlite: one row per record, rowid = PMID.
FTS_SCHEMA = "CREATE VIRTUAL TABLE lexical USING fts5(title, abstract, mesh, tokenize='porter unicode61')"

# Column weights for bm25(): a title word is worth more than one in the body.
COLUMN_WEIGHTS = (2.0, 1.0, 1.0)
BM25_K1 = 1.2  # FTS5's fixed k1

_GREEK = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "κ": "kappa",
    "λ": "lambda", "μ": "mu", "σ": "sigma", "τ": "tau", "ω": "omega",
}  # fmt: skip

# Compound tokens: letters/digits joined by - / . and an optional trailing + ("CD4+", "IL-6", "COVID-19").
_TOKEN = re.compile(r"[a-z0-9]+(?:[-/.][a-z0-9]+)*\+?")

# Question words and function words: they match nearly every abstract and only slow FTS5 down.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    whether there's it's vs versus among also may might must shall""".split()
)


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    if any(ch in text for ch in _GREEK):
        text = "".join(_GREEK.get(ch, ch) for ch in text)
    return text


def terms(text: str, *, drop_stopwords: bool = False) -> list[str]:
    """Index terms of ``text``: compound biomedical tokens joined, plus their parts."""
    out: list[str] = []
    for match in _TOKEN.finditer(_fold(text)):
        token = match.group(0)
        plus = token.endswith("+")
        core = token.rstrip("+")
        parts = [p for p in re.split(r"[-/.]", core) if p]
        if len(parts) > 1:
            joined = "".join(parts)
            # decimals ("0.05") stay one term; words joined by hyphens also keep their parts
            out.append(joined)
            if not re.fullmatch(r"\d+(?:\.\d+)?", core):
                out.extend(parts)
        else:
            out.append(core)
        if plus:
            out.append(core.replace("-", "").replace("/", "").replace(".", "") + "plus")
    if drop_stopwords:
        out = [t for t in out if t not in STOPWORDS]
    return out


def document_text(text: str | None) -> str:
    """What is stored in an FTS5 column for ``text`` (terms separated by spaces)."""
    return " ".join(terms(text or ""))


def match_expression(question: str) -> str | None:
    """An FTS5 MATCH query that ORs the question's terms; None if it has no searchable term."""
    seen: dict[str, None] = {}
    for term in terms(question, drop_stopwords=True):
        seen.setdefault(term, None)
    if not seen:
        return None
    return " OR ".join(f'"{t}"' for t in seen)


__all__ = ["terms", "document_text", "match_expression", "FTS_SCHEMA", "COLUMN_WEIGHTS", "BM25_K1", "STOPWORDS"]
