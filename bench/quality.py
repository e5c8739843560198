"""Answer-quality benchmark: `qa eval` in all three modes on the shared and paraphrased questions.

    python bench/quality.py            # prints a table, writes bench/results/quality.json

Builds (once, cached in bench/.cache) an index of ../shared/data/pubmedqa/pubmed-1000.xml.gz plus
the seed record, runs `qa eval --json` for dense, lexical and hybrid on the 1,000 shared questions and
on the 30 paraphrased questions in bench/paraphrase/, and measures how often the extractive answer's
first sentence comes from the relevant abstract when that abstract is ranked first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import (  # noqa: I001
    PARAPHRASE_QRELS,
    PARAPHRASE_QUERIES,
    REPO,
    SHARED_QRELS,
    SHARED_QUERIES,
    corpus_index,
    write_results,
)

TARGETS = {"hybrid_recall@1": 0.99, "hybrid_mrr@10": 0.993, "answer_first_sentence": 0.90}


sys.path.insert(0, str(REPO))
from qa.store import IndexStore  # noqa: E402


def run_eval(index, queries, qrels) -> dict:
    cmd = [sys.executable, "-m", "qa.cli", "eval", str(queries), str(qrels), "--index", str(index), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        sys.exit(f"qa eval failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def answer_agreement(index) -> dict:
    """Share of questions, among those whose PMID is ranked first, whose answer starts in that abstract."""
    sys.path.insert(0, str(REPO))
    from qa import Retriever
    from qa.embed import quiet_third_party
    from qa.evaluate import load_qrels, load_queries

    quiet_third_party()
    queries, qrels = load_queries(SHARED_QUERIES), load_qrels(SHARED_QRELS)
    top_first = agree = empty = 0
    with Retriever(index) as retriever:
        for qid, text in queries.items():
            response = retriever.ask(text, k=5)
            if not response.hits or response.hits[0].pmid not in qrels.get(qid, {}):
                continue
            top_first += 1
            if not response.answer.sentences:
                empty += 1
            elif response.answer.sentences[0].pmid == response.hits[0].pmid:
                agree += 1
    return {
        "questions_ranked_first": top_first,
        "first_sentence_from_it": agree,
        "no_answer": empty,
        "share": round(agree / top_first, 4) if top_first else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached index first")
    parser.add_argument("--backend", choices=["onnx-int8", "torch"], help="encoder backend (default: qa's default)")
    args = parser.parse_args()
    index = corpus_index(args.rebuild, backend=args.backend)
    started = time.perf_counter()
    shared = run_eval(index, SHARED_QUERIES, SHARED_QRELS)
    paraphrase = run_eval(index, PARAPHRASE_QUERIES, PARAPHRASE_QRELS)
    answers = answer_agreement(index)
    results = {
        "backend": IndexStore(index).manifest().backend,
        "shared": shared,
        "paraphrase": paraphrase,
        "answer": answers,
        "targets": TARGETS,
        "seconds": round(time.perf_counter() - started, 1),
    }
    checks = {
        "hybrid R@1 >= 0.99 (shared)": shared["hybrid"]["recall@1"] >= 0.99,
        "hybrid MRR@10 >= 0.993 (shared)": shared["hybrid"]["mrr@10"] >= 0.993,
        "hybrid MRR@10 beats dense and lexical (shared)": shared["hybrid"]["mrr@10"]
        > max(shared["dense"]["mrr@10"], shared["lexical"]["mrr@10"]),
        "hybrid R@1 >= dense R@1 (paraphrase)": paraphrase["hybrid"]["recall@1"] >= paraphrase["dense"]["recall@1"],
        "hybrid MRR@10 >= dense MRR@10 (paraphrase)": paraphrase["hybrid"]["mrr@10"] >= paraphrase["dense"]["mrr@10"],
        "answer starts in the top relevant abstract >= 90%": answers["share"] >= 0.90,
    }
    results["checks"] = checks
    path = write_results(f"quality-{results['backend']}", results)

    keys = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
    print(f"encoder backend: {results['backend']}")
    print(f"{'set':11}{'mode':9}" + "".join(k.rjust(11) for k in keys) + "queries".rjust(9))
    for name, table in (("shared", shared), ("paraphrase", paraphrase)):
        for mode in ("dense", "lexical", "hybrid"):
            m = table[mode]
            print(f"{name:11}{mode:9}" + "".join(f"{m[k]:11.4f}" for k in keys) + f"{m['queries']:9d}")
    print(
        f"\nanswer: first sentence from the top-ranked relevant abstract in {answers['first_sentence_from_it']}"
        f"/{answers['questions_ranked_first']} = {answers['share']:.1%} (no answer: {answers['no_answer']})"
    )
    print()
    for label, ok in checks.items():
        print(f"  [{'met' if ok else 'NOT met'}] {label}")
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
