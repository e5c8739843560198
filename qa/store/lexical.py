"""Lexical: all of BM25 -- biomedical terms, the SQLite FTS5 table, queries, idf and the score ceiling.

Exact terms -- drug names, genes, acronyms such as IL-6, CRP, CD4+ -- are what
lexical search gets right and embeddings blur, so the tokenizer keeps them:
"IL-6" is indexed as ``il6`` (matching "IL6") plus its parts ``il`` and ``6``;
"CD4+" adds ``cd4plus``; Greek letters are spelled out ("TNF-α" -> ``tnfalpha``).
FTS5's porter tokenizer then stems the words. Documents and questions go
through the same function, so they always agree.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

import numpy as np

from ..errors import IndexStoreError

# FTS5 table kept inside passages.sqlite: one row per record, rowid = PMID. Contentless (content=''): it keeps
# the inverted index but not a second copy of the text, which the records table holds already (427 of 3,006
# bytes per passage on the shared corpus). A row is removed by replaying the text it was made from (``delete``).
FTS_SCHEMA = "CREATE VIRTUAL TABLE lexical USING fts5(title, abstract, mesh, content='', tokenize='porter unicode61')"

# Up to this many allowed records, a filtered BM25 search looks each up by rowid; beyond, it streams the ranked
# matches and keeps the allowed ones (``LexicalIndex.search``). FTS5 pays for a rowid lookup in proportion to
# the collection (measured: 174 us per record looked up at 1,001 records, 426 us at 2,077), and for streaming
# about 2-4 us per matching record: streaming wins beyond about 15 records at any size.
LOOKUP_LIMIT = 16

# A question word held by more than COMMON_SHARE of the records, and by more than COMMON_RECORDS of them, is
# left out of the BM25 MATCH ("patients", "study"). FTS5 scores every record that matches any word (about
# 1.3 us each), so at 154,000 records the common words cost 150-200 ms an ask (bench/scale.py), for an idf of
# at most log 9 against 5-10 for the words that pick the record. Below COMMON_RECORDS nothing is left out: a
# collection of a few thousand records is searched in full, as the shared corpus's figures were measured.
COMMON_SHARE = 0.1
COMMON_RECORDS = 5000
# A hybrid search reads at most this many BM25 matches past its top to score the dense candidates
# (``LexicalIndex.search_and_score``); the shared 1,001 records never reach it.
STREAM_LIMIT = 2000

# Column weights for bm25(): a title word is worth more than one in the body.
COLUMN_WEIGHTS = (2.0, 1.0, 1.0)
_SCORED = (f"SELECT rowid, -bm25(lexical, {', '.join(map(str, COLUMN_WEIGHTS))}) AS score "
           "FROM lexical WHERE lexical MATCH ?")
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


def _term_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    if any(ch in text for ch in _GREEK):
        text = "".join(_GREEK.get(ch, ch) for ch in text)
    return text


def terms(text: str, *, drop_stopwords: bool = False) -> list[str]:
    """Index terms of ``text``: compound biomedical tokens joined, plus their parts."""
    out: list[str] = []
    for match in _TOKEN.finditer(_term_text(text)):
        token = match.group(0)
        if token.isalnum():  # a plain word or number, most tokens: nothing to split or add
            out.append(token)
            continue
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


def compound_parts(text: str) -> dict[str, list[str]]:
    """The joined terms of ``text``'s hyphenated words, each with its parts ("two-day" -> twoday: two, day)."""
    out: dict[str, list[str]] = {}
    for match in _TOKEN.finditer(_term_text(text)):
        parts = [p for p in re.split(r"[-/.]", match.group(0).rstrip("+")) if p]
        if len(parts) > 1 and not all(p.isdigit() for p in parts):
            out["".join(parts)] = parts
    return out


# British spellings and their American forms, and nouns and their adjectives: ways a question's word differs
# from the collection's while naming the same thing. Each is tried only for a word no record holds.
_SPELLINGS = (
    (re.compile(r"(?<=\w{3})is(e|ed|es|ing|ation|ations|er|ers)$"), r"iz\1"),  # nebulised, randomisation
    (re.compile(r"(?<=\w{2})ys(e|ed|es|ing)$"), r"yz\1"),  # analysed
    (re.compile(r"(?<=[^aeiou])[ao]e(?=[^aeiou])|^oe(?=[^aeiou])|(?<=h)oe(?=a$)"), "e"),  # haem-, oedema, foetal
    (re.compile(r"(?<=\w{3})our(s|al|ed|ing)?$"), r"or\1"),  # tumour, labour, behaviour
    (re.compile(r"(?<=\w{2}[bt])re(s)?$"), r"er\1"),  # centre, fibres, litre
    (re.compile(r"(?<=\w{3})ll(ed|ing|er|ers)$"), r"l\1"),  # labelled, modelling
    (re.compile(r"(?<=\w{3})ogue(s)?$"), r"og\1"),  # analogue
)
_NOUN_ENDINGS = (
    (re.compile(r"(?<=\w{5})ias?$"), ""),  # cycloplegia -> cyclopleg(ic), ischaemia -> ischaem(ic)
    (re.compile(r"(?<=\w{4})o(sis|ses)$"), "ot"),  # fibrosis -> fibrot(ic)
    (re.compile(r"(?<=\w{4})itis$"), "it"),  # arthritis -> arthrit(ic)
)


_QUOTES = "\"'()[]{},.;:?!"  # what ``words_of`` strips from a word as written


def words_of(question: str, wanted: set[str]) -> list[str]:
    """The question's words, as written and in order, whose terms are among ``wanted``: what a reader is told
    of ("no record mentions hydroxyurea")."""
    out: list[str] = []
    for word in question.split():
        word = word.strip(_QUOTES)
        if word and word not in out and set(terms(word, drop_stopwords=True)) & wanted:
            out.append(word)
    return out


def without_words(question: str, wanted: set[str]) -> str:
    """The question with its words whose terms are among ``wanted`` left out ("Does hydroxyurea prevent
    stroke?" without hydroxyurea: "Does prevent stroke?"): what it asks of a record that lacks them."""
    kept = (word for word in question.split() if not set(terms(word.strip(_QUOTES), drop_stopwords=True)) & wanted)
    return " ".join(kept)


def american_spelling(term: str) -> str:
    """``term`` spelled the American way ("caesarean" -> cesarean, "labour" -> labor); else ``term`` itself."""
    for pattern, replacement in _SPELLINGS:
        term = pattern.sub(replacement, term)
    return term


def spelling_variants(term: str) -> list[str]:
    """Other forms of ``term`` to look for, as word prefixes: its American spelling, the stem its adjective
    shares, and both together ("anaemia" -> anemia, anaem, anem)."""
    spelled = american_spelling(term)
    out = [spelled] if spelled != term else []
    for word in (term, spelled):
        for pattern, replacement in _NOUN_ENDINGS:
            stem = pattern.sub(replacement, word)
            if stem != word:
                out.append(stem)
    return list(dict.fromkeys(out))


def _columns(title: str | None, abstract: str, mesh: Sequence[str]) -> tuple[str, str, str]:
    return document_text(title), document_text(abstract), document_text(" ; ".join(mesh))


def document_text(text: str | None) -> str:
    """What is stored in an FTS5 column for ``text`` (terms separated by spaces)."""
    return " ".join(terms(text or ""))


def match_expression(question: str) -> str | None:
    """An FTS5 MATCH query that ORs the question's terms; None if it has no searchable term."""
    return _any_of(query_terms(question))


def query_terms(question: str) -> list[str]:
    """The question's terms that a search looks for, each once, in order (stopwords dropped)."""
    return list(dict.fromkeys(terms(question, drop_stopwords=True)))


def fts5_idf(n_records: int, holding: int) -> float:
    """FTS5's idf for a phrase ``holding`` of ``n_records`` records hold (``fts5_aux.c``: 1e-6 when not
    positive), as its ``bm25()`` computes it."""
    idf = math.log((n_records - holding + 0.5) / (holding + 0.5))
    return idf if idf > 0 else 1e-6


def _any_of(chosen: Sequence[str]) -> str | None:
    return " OR ".join(f'"{t}"' for t in chosen) if chosen else None


class Executes(Protocol):
    """A SQLite connection, or the snapshot's one-connection-per-thread stand-in for one."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> sqlite3.Cursor: ...


class LexicalIndex:
    """The FTS5 table of one snapshot: one row per record (rowid = PMID) over title, abstract and MeSH."""

    def __init__(self, db: Executes, common_share: float = COMMON_SHARE) -> None:
        self.db = db
        self.common_share = common_share
        self._df_cache: dict[str, int] = {}
        self._n_records: int | None = None
        self._average: float | None = None

    @staticmethod
    def create(db: sqlite3.Connection) -> None:
        db.execute(FTS_SCHEMA)

    # -- writing -----------------------------------------------------------

    def put(self, pmid: str, title: str | None, abstract: str, mesh: Sequence[str]) -> None:
        """Index a record that has no row yet (``delete`` its old version first)."""
        self.db.execute("INSERT INTO lexical(rowid, title, abstract, mesh) VALUES (?,?,?,?)",
                        (int(pmid), *_columns(title, abstract, mesh)))  # fmt: skip

    def delete(self, pmid: str, title: str | None, abstract: str, mesh: Sequence[str]) -> None:
        """Remove a record's row, given the record it was indexed from: a contentless table needs the same
        text again to take its terms out (other text would corrupt the counts, so only the store calls this,
        with the record it holds)."""
        self.db.execute("INSERT INTO lexical(lexical, rowid, title, abstract, mesh) VALUES ('delete',?,?,?,?)",
                        (int(pmid), *_columns(title, abstract, mesh)))  # fmt: skip

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM lexical")[0][0])

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(f"the lexical index is unreadable ({exc}); run `qa verify`, then rebuild") from None

    # -- reading -----------------------------------------------------------

    def search(self, question: str, n: int, allowed: AbstractSet[int] | None = None) -> dict[str, float]:
        """BM25 of the best-matching records by PMID, highest first; only the ``allowed`` rowids (PMIDs as
        numbers, as ``Snapshot.allowed`` keeps them) if given.

        A few allowed records are looked up by rowid; more (a filter's, or the dense candidates a hybrid
        search completes) are kept from the ranked matches as they stream (``LOOKUP_LIMIT``). Looked up, a
        year filter's 60% of 2,077 records took 310 ms a search; streamed, 2 ms (``bench/scale.py``)."""
        expression = self.match_expression(question)
        if expression is None or n < 1:
            return {}
        if allowed is None:
            return {str(r): float(s) for r, s in self._query(_SCORED + " ORDER BY score DESC LIMIT ?", (expression, n))}
        if not allowed:
            return {}
        if len(allowed) <= LOOKUP_LIMIT:
            sql = _SCORED + " AND rowid IN (SELECT value FROM json_each(?)) ORDER BY score DESC LIMIT ?"
            return {str(r): float(s) for r, s in self._query(sql, (expression, json.dumps(sorted(allowed)), n))}
        out: dict[str, float] = {}
        for rowid, score in self._ranked(expression):
            if rowid in allowed:
                out[str(rowid)] = float(score)
                if len(out) >= n:
                    break
        return out

    def search_and_score(
        self, question: str, n: int, allowed: AbstractSet[int] | None, also: Iterable[str]
    ) -> dict[str, float]:
        """``search``, then the BM25 of each record of ``also``, from one pass over the ranked matches: a
        hybrid search needs both, and at 154,000 records each pass over FTS5's matches costs about 100 ms
        (``bench/scale.py``). The pass reads at most ``STREAM_LIMIT`` matches past the top ``n``: a record of
        ``also`` not among them gets the last score read, which bounds its own (0 when every match was read:
        it matches no term). At 1M passages, 47,000 matches a question were read before the limit."""
        expression = self.match_expression(question)
        scored = {int(p) for p in also}
        if expression is None or n < 1 or not scored:
            top = self.search(question, n, allowed)
            return {**top, **{str(p): 0.0 for p in sorted(scored) if str(p) not in top}}
        top: dict[str, float] = {}
        extra: dict[str, float] = {}
        read, filled, last = 0, 0, 0.0
        for rowid, score in self._ranked(expression):
            read, last = read + 1, float(score)
            if len(top) < n and (allowed is None or rowid in allowed):
                top[str(rowid)] = last
                filled = read
            if rowid in scored:
                extra[str(rowid)] = last
            if len(top) >= n and (len(extra) >= len(scored) or read - filled >= STREAM_LIMIT):
                break
        else:
            last = 0.0  # every match was read: a record not among them matches no term
        rest = {str(p): extra.get(str(p), last) for p in sorted(scored) if str(p) not in top}
        return {**top, **rest}

    def _ranked(self, expression: str) -> Iterator[tuple[int, float]]:
        """Every record matching ``expression`` with its BM25, highest first, read as the rows stream."""
        try:
            cursor = self.db.execute(_SCORED + " ORDER BY score DESC", (expression,))
            while rows := cursor.fetchmany(2048):
                yield from rows
        except sqlite3.DatabaseError as exc:
            raise IndexStoreError(f"the lexical index is unreadable ({exc}); run `qa verify`, then rebuild") from None

    def ceiling(self, question: str) -> float:
        """The BM25 a record holding every searched term would approach: sum of idf x (k1 + 1) x top weight."""
        return sum(self.idf(term) * (BM25_K1 + 1) * max(COLUMN_WEIGHTS)
                   for term in self.searched_terms(question) if self._document_frequency(term))

    def idf(self, term: str) -> float:
        """FTS5's idf of ``term`` in this collection (a term no record holds counts as held by one)."""
        return fts5_idf(self._records(), max(1, self._document_frequency(term)))

    def searched_terms(self, question: str) -> list[str]:
        """The question's terms that BM25 searches: all but those in more than ``common_share`` of the records
        and more than ``COMMON_RECORDS`` (the rarest one stays when every term is that common)."""
        found = query_terms(question)
        limit = max(self.common_share * self._records(), COMMON_RECORDS)
        kept = [t for t in found if self._document_frequency(t) <= limit]
        if found and not kept:
            kept = [min(found, key=self._document_frequency)]
        return kept

    def match_expression(self, question: str) -> str | None:
        """``match_expression`` over ``searched_terms``: the FTS5 query BM25 runs."""
        return _any_of(self.searched_terms(question))

    def _records(self) -> int:
        if self._n_records is None:
            self._n_records = self.count()
        return self._n_records

    def average_length(self) -> float:
        """Tokens a record holds on average, over all columns: FTS5's ``avgdl``, from its averages record."""
        if self._average is None:
            rows = self._query("SELECT block FROM lexical_data WHERE id = ?", (_AVERAGES_ROWID,))
            try:
                counts = _varints(bytes(rows[0][0])) if rows else []
            except (ValueError, TypeError):
                counts = []
            if len(counts) < 2 or counts[0] <= 0:
                raise IndexStoreError("the lexical index's statistics are unreadable; run `qa verify`, then rebuild")
            self._average = sum(counts[1:]) / counts[0]
        return self._average

    def coverage(self, question: str, pmids: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
        """How much of the question each record speaks to: the idf-weighted share of the question's content
        terms found in the record (by FTS5's own stemmed match), and the terms that no record contains,
        each with its share.

        A term that no record contains weighs what a term in one record would (it is the rarest there is):
        a question about a drug the collection never names keeps that weight uncovered in every record.
        """
        return self.covered(*self.term_holders(question, pmids), pmids)

    @staticmethod
    def covered(
        shares: dict[str, float], holders: dict[str, set[str]], pmids: Sequence[str]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """``coverage`` from ``term_holders``' answer: each record's covered share, and the absent terms'."""
        covered = {p: sum(share for term, share in shares.items() if p in holders.get(term, ())) for p in pmids}
        return covered, {term: share for term, share in shares.items() if term not in holders}

    def term_holders(self, question: str, pmids: Sequence[str]) -> tuple[dict[str, float], dict[str, set[str]]]:
        """The question's content terms with their idf-weighted share (summing to 1), and for each term some
        record holds, which of ``pmids`` hold it; a term no record holds has no entry in the second."""
        weights = self.term_weights(question)
        total = sum(weights.values())
        if total <= 0:
            return {}, {}
        holders: dict[str, set[str]] = {}
        wanted = json.dumps([int(p) for p in pmids])
        for term in weights:
            pattern = self._held_as(term)
            if pattern is None:
                continue
            holders[term] = set()
            if pmids:
                rows = self._query(
                    "SELECT rowid FROM lexical WHERE lexical MATCH ? AND rowid IN (SELECT value FROM json_each(?))",
                    (pattern, wanted),
                )
                holders[term] = {str(rowid) for (rowid,) in rows}
        return {term: weight / total for term, weight in weights.items()}, holders

    def holding_any(self, patterns: Sequence[str], pmids: Sequence[str]) -> tuple[int, set[str]]:
        """How many records hold any of ``patterns`` (FTS5 phrases or prefixes, ``'"child"*'``), and which of
        ``pmids`` do: whether a record names a population in any of its words (``qa.ask.population``)."""
        if not patterns:
            return 0, set()
        expression = "(" + " OR ".join(patterns) + ")"
        holding = self._document_frequency(expression)
        if not holding or not pmids:
            return holding, set()
        wanted = json.dumps([int(p) for p in pmids])
        sql = "SELECT rowid FROM lexical WHERE lexical MATCH ? AND rowid IN (SELECT value FROM json_each(?))"
        rows = self._query(sql, (expression, wanted))
        return holding, {str(rowid) for (rowid,) in rows}

    def _held_as(self, term: str) -> str | None:
        """The FTS5 pattern by which some record holds ``term``, or None when none does: the word itself; a
        word it starts ("tonsils" in "tonsillectomy"); its American spelling ("nebulised" as "nebulized");
        or the adjective of its noun ("cycloplegia" as "cycloplegic"). Without the last two, 2 of the 50 dev
        natural questions named a word "no record mentions" that their own record holds. A word some records
        hold in both spellings is looked for in both: a record that writes "cesarean" answers "caesarean"."""
        if self._document_frequency(term):
            spelled = american_spelling(term)
            if spelled != term and self._document_frequency(spelled):
                return f'("{term}" OR "{spelled}")'
            return f'"{term}"'
        for candidate in (term, *spelling_variants(term)):
            pattern = f'"{candidate}"*'
            if self._document_frequency(pattern):
                return pattern
        return None

    def term_weights(self, question: str) -> dict[str, float]:
        """The question's content terms with their idf (FTS5's formula; a term in no record counts as in one).

        A hyphenated word's joined form that no record holds is left out when the collection knows its
        parts: "cholesterol-lowering" is asked by "cholesterol" and "lowering", and a collection that
        writes the words apart does not lack the subject. Of the 50 dev natural questions, 17 named a word
        no record holds; 7 of them through such joins, 4 only through them."""
        compounds = compound_parts(question)
        out: dict[str, float] = {}
        for term in query_terms(question):
            if len(term) < 2 and not term.isdigit():
                continue
            n = self._document_frequency(term)
            if n == 0 and term in compounds and all(self._document_frequency(p) for p in compounds[term]):
                continue
            out[term] = self.idf(term)
        return out

    def absent_words(self, question: str) -> list[str]:
        """The question's words, as written, that no record holds (by ``coverage``'s rule), in order: what a
        reader is told the collection never mentions ("no record mentions hydroxyurea")."""
        return words_of(question, set(self.coverage(question, [])[1]))

    def _document_frequency(self, term: str) -> int:
        """Records holding ``term`` (a bare term, or an FTS5 pattern: a quoted prefix ``"tonsil"*``, or an
        expression in parentheses)."""
        # A snapshot never changes, so counts can be kept for the life of this reader.
        n = self._df_cache.get(term)
        if n is None:
            pattern = term if term.startswith(('"', "(")) else f'"{term}"'
            (n,) = self._query("SELECT count(*) FROM lexical WHERE lexical MATCH ?", (pattern,))[0]
            if len(self._df_cache) < 100_000:
                self._df_cache[term] = n
        return n


BM25_B = 0.75  # FTS5's fixed b
_AVERAGES_ROWID = 1  # FTS5 keeps its row count and each column's token total in this row of its %_data table


def _varints(blob: bytes) -> list[int]:
    """SQLite's variable-length integers, as FTS5 writes them (7 bits a byte, high bit set on all but the last;
    a ninth byte gives 8)."""
    out, i = [], 0
    while i < len(blob):
        value = 0
        for j in range(9):
            if i >= len(blob):
                raise ValueError("a truncated varint")
            byte = blob[i]
            i += 1
            if j == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        out.append(value)
    return out


class SubsetBM25:
    """BM25 over a filter's few records, scored here with FTS5's formula and the whole collection's statistics,
    so every score equals the one FTS5 gives (a test compares them).

    FTS5 scores and sorts every record that matches a question word before it returns the first: under a
    filter of 2,870 of 154,000 records, a search read 4,752 ranked matches to find 50 allowed ones (30-40
    ms an ask, ``bench/scale.py``). Kept with the filter (``Snapshot.allowed``), the filter's term counts
    make the search a few array operations. The terms are stemmed by FTS5 itself, in a scratch table.
    """

    def __init__(self, rowids: np.ndarray, lengths: np.ndarray, postings: dict[str, tuple[np.ndarray, np.ndarray]],
                 lexical: LexicalIndex, stems: dict[str, str]) -> None:  # fmt: skip
        self.rowids, self.postings, self.lexical, self._stems = rowids, postings, lexical, stems
        self._position = {int(r): i for i, r in enumerate(rowids.tolist())}
        average = lexical.average_length()
        self._norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths / average)  # per record, as FTS5 computes it

    @classmethod
    def of(cls, lexical: LexicalIndex, records: Iterable[tuple[int, str | None, str, Sequence[str]]]) -> SubsetBM25:
        """From the records ``(rowid, title, abstract, MeSH)`` as the store holds them."""
        rowids, columns = [], []
        for rowid, title, abstract, mesh in records:
            rowids.append(int(rowid))
            columns.append([text.split() for text in _columns(title, abstract, mesh)])
        stems = _fts5_stems({t for record in columns for column in record for t in column})
        counts: dict[str, dict[int, float]] = {}
        lengths = np.zeros(len(rowids), dtype=np.float64)
        for i, record in enumerate(columns):
            for weight, column in zip(COLUMN_WEIGHTS, record):
                lengths[i] += len(column)
                for token, times in Counter(column).items():  # whole numbers of 1s and 2s: exact in any order
                    held = counts.setdefault(stems[token], {})
                    held[i] = held.get(i, 0.0) + weight * times
        postings = {stem: (np.fromiter(held.keys(), dtype=np.int64, count=len(held)),
                           np.fromiter(held.values(), dtype=np.float64, count=len(held)))
                    for stem, held in counts.items()}  # fmt: skip
        return cls(np.asarray(rowids, dtype=np.int64), lengths, postings, lexical, stems)

    def scores(self, question: str) -> np.ndarray:
        """Each record's BM25 for ``question``'s searched terms (0 when it holds none), phrase by phrase in
        the MATCH expression's order, with FTS5's operations in FTS5's order: the same floats."""
        total = np.zeros(len(self.rowids), dtype=np.float64)
        terms = self.lexical.searched_terms(question)
        missing = [t for t in terms if t not in self._stems]
        if missing:
            self._stems.update(_fts5_stems(set(missing)))
        for term in terms:
            found = self.postings.get(self._stems[term])
            if found is None:
                continue
            idf = self.lexical.idf(term)
            positions, frequency = found
            total[positions] += idf * (frequency * (BM25_K1 + 1.0)) / (frequency + self._norm[positions])
        return total

    def search(self, question: str, n: int, also: Iterable[str] = ()) -> dict[str, float]:
        """The top ``n`` records by BM25 (those holding a searched term), highest first, then the BM25 of each
        record of ``also`` (0 for one outside the filter or holding no term)."""
        scores = self.scores(question) if n > 0 or also else np.zeros(0)
        out: dict[str, float] = {}
        if n > 0:
            held = np.flatnonzero(scores > 0)
            for i in held[np.lexsort((self.rowids[held], -scores[held]))][:n]:
                out[str(int(self.rowids[i]))] = float(scores[i])
        for pmid in sorted({int(p) for p in also}):
            if str(pmid) not in out:
                i = self._position.get(pmid)
                out[str(pmid)] = float(scores[i]) if i is not None else 0.0
        return out


def _fts5_stems(tokens: set[str]) -> dict[str, str]:
    """Each token as FTS5's porter tokenizer indexes it, read from a scratch in-memory table's vocabulary."""
    ordered = sorted(tokens)
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE scratch USING fts5(text, tokenize='porter unicode61')")
        db.execute("CREATE VIRTUAL TABLE scratch_terms USING fts5vocab(scratch, 'instance')")
        db.execute("INSERT INTO scratch(rowid, text) VALUES (1, ?)", (" ".join(ordered),))
        by_offset = dict(db.execute("SELECT offset, term FROM scratch_terms").fetchall())
    finally:
        db.close()
    if len(by_offset) != len(ordered):
        raise IndexStoreError("internal error: FTS5 split the collection's terms differently; the search is unchanged")
    return {token: by_offset[i] for i, token in enumerate(ordered)}


__all__ = [
    "LexicalIndex",
    "terms",
    "words_of",
    "without_words",
    "document_text",
    "match_expression",
    "spelling_variants",
    "american_spelling",
    "FTS_SCHEMA",
    "COLUMN_WEIGHTS",
    "COMMON_SHARE",
    "COMMON_RECORDS",
    "BM25_K1",
    "BM25_B",
    "SubsetBM25",
    "STOPWORDS",
]
