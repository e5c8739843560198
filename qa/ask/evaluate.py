"""Evaluate: BEIR-style retrieval metrics (Recall@1/5/10, MRR@10, nDCG@10) counted per PMID."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import QAError
from ..query import Filters, check_mode
from .retrieve import Retriever

CUTOFF = 10


@dataclass
class Metrics:
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    mrr_at_10: float
    ndcg_at_10: float
    queries: int

    def to_dict(self) -> dict[str, float | int]:
        data = asdict(self)
        return {
            "recall@1": round(data["recall_at_1"], 4),
            "recall@5": round(data["recall_at_5"], 4),
            "recall@10": round(data["recall_at_10"], 4),
            "mrr@10": round(data["mrr_at_10"], 4),
            "ndcg@10": round(data["ndcg_at_10"], 4),
            "queries": self.queries,
        }


def load_queries(path: str | Path) -> dict[str, str]:
    """BEIR queries: one ``{"_id", "text"}`` object per line."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    out[str(obj["_id"])] = str(obj["text"])
                except (ValueError, KeyError, TypeError):
                    raise QAError(f'{path}:{lineno}: expected a JSON object with "_id" and "text"') from None
    except OSError as exc:
        raise QAError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return out


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV with a ``query-id, corpus-id, score`` header; corpus-id is the PMID."""
    out: dict[str, dict[str, int]] = {}
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t")
            header = next(reader, None)
            if not header or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
                raise QAError(f"{path}: expected a header 'query-id<TAB>corpus-id<TAB>score'")
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    qid, pmid, score = row[0], row[1], int(row[2])
                except (IndexError, ValueError):
                    raise QAError(f"{path}:{lineno}: expected query-id, corpus-id and an integer score") from None
                if score > 0:
                    out.setdefault(qid, {})[pmid] = score
    except OSError as exc:
        raise QAError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return out


def score_ranking(ranked: Sequence[str], relevant: dict[str, int]) -> dict[str, float]:
    """Metrics of one ranked PMID list against the relevant PMIDs (graded by qrels score)."""
    top = list(dict.fromkeys(ranked))[:CUTOFF]  # one hit per PMID
    hits = [p in relevant for p in top]
    first = next((i for i, h in enumerate(hits) if h), None)
    dcg = sum(relevant[p] / math.log2(i + 2) for i, p in enumerate(top) if p in relevant)
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(relevant.values(), reverse=True)[:CUTOFF]))
    n = len(relevant)
    return {
        "recall_at_1": sum(hits[:1]) / n,
        "recall_at_5": sum(hits[:5]) / n,
        "recall_at_10": sum(hits[:10]) / n,
        "mrr_at_10": 0.0 if first is None else 1.0 / (first + 1),
        "ndcg_at_10": dcg / ideal if ideal else 0.0,
    }


def evaluate(
    retriever: Retriever,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    *,
    mode: str = "hybrid",
    filters: Filters | None = None,
    progress: Callable[[int, int], None] | None = None,
    rankings: dict[str, list[str]] | None = None,
) -> Metrics:
    """Run every judged query through ``retriever`` and average the per-query metrics."""
    judged = [q for q in queries if q in qrels]
    if not judged:
        raise QAError("no query in the queries file has a judgement in the qrels file")
    totals = dict.fromkeys(("recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10", "ndcg_at_10"), 0.0)
    for i, qid in enumerate(judged, start=1):
        hits = retriever.search(queries[qid], k=CUTOFF, mode=check_mode(mode), filters=filters, highlight=False)
        ranked = [h.pmid for h in hits]
        if rankings is not None:
            rankings[qid] = ranked
        for key, value in score_ranking(ranked, qrels[qid]).items():
            totals[key] += value
        if progress:
            progress(i, len(judged))
    n = len(judged)
    return Metrics(**{k: v / n for k, v in totals.items()}, queries=n)


__all__ = ["Metrics", "evaluate", "load_queries", "load_qrels", "score_ranking"]
