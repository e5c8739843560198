"""Why the lexical index is SQLite FTS5 and not bm25s: both measured on the same records and questions.

    pip install -e '.[bench]' && python bench/lexical_choice.py

Prints Recall@1 / MRR@10 on the 1,000 shared questions (one hit per PMID, whole records), the
median query time, and the time to index, for: bm25s with its own tokenizer and English stemmer (the
issue's reference setup), bm25s with pubmed-qa's biomedical tokenizer, and FTS5 as `qa` uses it.
Writes bench/results/lexical_choice.json.
"""

from __future__ import annotations

import statistics
import sys
import time

from common import REPO, SHARED_QRELS, SHARED_QUERIES, corpus_index, write_results

sys.path.insert(0, str(REPO))

from qa.ask.evaluate import load_qrels, load_queries, score_ranking  # noqa: E402
from qa.store import IndexStore  # noqa: E402
from qa.store.lexical import terms  # noqa: E402


def evaluate_ranker(search, queries, qrels) -> dict:
    totals = {"recall_at_1": 0.0, "mrr_at_10": 0.0}
    times = []
    for qid, text in queries.items():
        t0 = time.perf_counter()
        ranked = search(text)
        times.append(time.perf_counter() - t0)
        m = score_ranking(ranked, qrels[qid])
        totals["recall_at_1"] += m["recall_at_1"]
        totals["mrr_at_10"] += m["mrr_at_10"]
    n = len(queries)
    return {"recall@1": round(totals["recall_at_1"] / n, 4), "mrr@10": round(totals["mrr_at_10"] / n, 4),
            "query_ms_p50": round(statistics.median(times) * 1000, 2)}  # fmt: skip


def main() -> None:
    try:
        import bm25s
        import Stemmer
    except ImportError:
        sys.exit("needs the bench extras: pip install -e '.[bench]'")
    index = corpus_index()
    queries, qrels = load_queries(SHARED_QUERIES), load_qrels(SHARED_QRELS)
    snapshot = IndexStore(index).open()
    records = [snapshot.passages.record(p) for p in sorted(snapshot.passages.pmids())]
    rows = [(r.pmid, r.title or "", r.abstract, " ; ".join(r.mesh)) for r in records if r is not None]
    pmids = [r[0] for r in rows]
    texts = [f"{title} {abstract} {mesh}" for _, title, abstract, mesh in rows]
    stemmer = Stemmer.Stemmer("english")
    results = {}

    # 1. bm25s, its own tokenizer, English stemmer and stopwords
    t0 = time.perf_counter()
    plain = bm25s.BM25()
    plain.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    build = time.perf_counter() - t0

    def search_plain(q: str) -> list[str]:
        docs, _ = plain.retrieve(bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False), k=10,
                                 show_progress=False)  # fmt: skip
        return [pmids[i] for i in docs[0]]

    results["bm25s (own tokenizer, stemmed)"] = {**evaluate_ranker(search_plain, queries, qrels),
                                                 "index_seconds": round(build, 2)}  # fmt: skip

    # 2. bm25s over pubmed-qa's biomedical terms, stemmed
    def analyse(text: str, drop: bool) -> list[str]:
        return stemmer.stemWords(terms(text, drop_stopwords=drop))

    t0 = time.perf_counter()
    ours = bm25s.BM25()
    ours.index([analyse(t, False) for t in texts], show_progress=False)
    build = time.perf_counter() - t0

    def search_ours(q: str) -> list[str]:
        tokens = [t for t in analyse(q, True) if t in ours.vocab_dict] or ["the"]
        docs, _ = ours.retrieve([tokens], k=10, show_progress=False)
        return [pmids[i] for i in docs[0]]

    results["bm25s (biomedical terms, stemmed)"] = {**evaluate_ranker(search_ours, queries, qrels),
                                                    "index_seconds": round(build, 2)}  # fmt: skip

    # 3. SQLite FTS5 exactly as `qa --mode lexical` ranks records
    def search_fts(q: str) -> list[str]:
        return list(snapshot.lexical.search(q, 10))

    t0 = time.perf_counter()
    import sqlite3

    scratch = sqlite3.connect(":memory:")
    from qa.store.lexical import FTS_SCHEMA, document_text

    scratch.execute(FTS_SCHEMA)
    scratch.executemany("INSERT INTO lexical(rowid, title, abstract, mesh) VALUES (?,?,?,?)",
                        [(int(p), document_text(t), document_text(a), document_text(m))
                         for p, t, a, m in rows])  # fmt: skip
    build = time.perf_counter() - t0
    results["SQLite FTS5 (biomedical terms, porter)"] = {**evaluate_ranker(search_fts, queries, qrels),
                                                         "index_seconds": round(build, 2)}  # fmt: skip

    print(f"{'lexical index':42}{'R@1':>8}{'MRR@10':>9}{'query p50 ms':>14}{'index s':>9}")
    for name, r in results.items():
        print(f"{name:42}{r['recall@1']:8.4f}{r['mrr@10']:9.4f}{r['query_ms_p50']:14.2f}{r['index_seconds']:9.2f}")
    path = write_results("lexical_choice", {"records": len(rows), "queries": len(queries), "results": results})
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
