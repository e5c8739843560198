"""Answer-quality benchmark: retrieval in all three modes, and what the answer block says.

    python bench/quality.py [--backend torch]   # prints a table, writes bench/results/quality-<backend>.json

Builds (once, cached in bench/.cache) an index of ../shared/data/pubmedqa/pubmed-1000.xml.gz plus
the seed record, runs `qa eval --json` for dense, lexical and hybrid on the 1,000 shared questions and
on the 30 paraphrased questions in bench/paraphrase/, and measures how often the extractive answer's
first sentence comes from the relevant abstract when that abstract is ranked first, and from its
Results or Conclusions; on the same asks, hit relevance (how many hits labelled strong, and weak, are
the gold record), how many answer sentences come from it, and the bottom line against PubMedQA's
expert verdict per half (decisions.tsv), with the held-out half's confusion table. On a second index
that adds the unstructured sample abstracts, it runs the hand-labelled sets of bench/answers/: marked
answer sentences, two-turn conversations (follow-ups and topic switches), off-topic and out-of-scope
questions, hit relevance on our own questions, and the bottom line of our natural yes/no questions
(verdicts.jsonl) against the one their records give (see bench/answer_eval.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import (  # noqa: I001
    ANSWER_CORPUS,
    PARAPHRASE_QRELS,
    PARAPHRASE_QUERIES,
    REPO,
    SHARED_QRELS,
    SHARED_QUERIES,
    corpus_index,
    load_decisions,
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


def labelled_sets(answer_index, shared_index) -> dict:
    """The hand-labelled sets on their own index; the shared questions (first sentence, hit relevance, verdicts)
    on the shared index."""
    from answer_eval import FRESH, load, run_all, shared_answers

    from qa import Retriever
    from qa.ask.evaluate import load_qrels, load_queries
    from qa.embed import quiet_third_party

    quiet_third_party()
    real = [q["question"] for q in load("questions.jsonl")]
    real += [c["turns"][0]["question"] for c in load("conversations.jsonl")]
    real += [q["question"] for q in load("in_scope.jsonl")]  # every in-scope question, so each half is counted
    real += [v["question"] for v in load("verdicts.jsonl") if v["split"] in FRESH]  # counted with in_scope's
    real += list(load_queries(PARAPHRASE_QUERIES).values())
    queries, qrels = load_queries(SHARED_QUERIES), load_qrels(SHARED_QRELS)
    with Retriever(answer_index) as retriever:
        result = run_all(retriever, real + list(queries.values()))
    decisions = {row["query-id"]: row["decision"] for row in load_decisions()}
    with Retriever(shared_index) as retriever:
        result["shared"] = shared_answers(retriever, queries, qrels, decisions)
    result["shared_first_sentence"] = result["shared"]["first"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached index first")
    parser.add_argument("--backend", choices=["onnx-int8", "torch"], help="encoder backend (default: qa's default)")
    args = parser.parse_args()
    index = corpus_index(args.rebuild, backend=args.backend)
    started = time.perf_counter()
    shared = run_eval(index, SHARED_QUERIES, SHARED_QRELS)
    paraphrase = run_eval(index, PARAPHRASE_QUERIES, PARAPHRASE_QRELS)
    labelled = labelled_sets(corpus_index(args.rebuild, backend=args.backend, corpus=ANSWER_CORPUS), index)
    answers = labelled["shared"]["agreement"]
    results = {
        "backend": IndexStore(index).manifest().backend,
        "shared": shared,
        "paraphrase": paraphrase,
        "answer": answers,
        "labelled": {k: v for k, v in labelled.items() if k != "conversations"}
        | {"conversations": {k: v for k, v in labelled["conversations"].items() if k != "rows"}},
        "conversation_rows": labelled["conversations"]["rows"],
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
        "answer block holds the marked sentence >= 80% (60 questions)": labelled["answers"]["all"]["rate"] >= 0.80,
        "follow-ups put the right record first >= 93%": labelled["conversations"]["follow_up_right_first"]["rate"]
        >= 0.93,
        "topic switches equal the standalone ranking 100%": labelled["conversations"]["switch_equals_standalone"][
            "rate"
        ]
        == 1.0,
        "first answer sentence from the gold record's Results/Conclusions >= 90% (shared)": labelled[
            "shared_first_sentence"
        ]["rate"]
        >= 0.90,
        "off-topic questions refused >= 90%": labelled["refusals"]["offtopic_rate"] >= 0.90,
        "real questions refused <= 1%": labelled["refusals"]["real_refused"] <= 0.01 * labelled["refusals"]["real"],
        "out-of-scope test half refused >= 90% (never trained on)": labelled["refusals"]["out_of_scope"]["test"][
            "refused"
        ]
        >= 0.9 * labelled["refusals"]["out_of_scope"]["test"]["of"],
        "held-out cases all read right (cases.jsonl)": all(c["ok"] for c in labelled["cases"]),
        "switches sharing words: test half all new topics (switches.jsonl)": all(
            c["ok"] for c in labelled["switches"] if c["split"] == "test" and c["kind"] == "switch"
        ),
    }
    from answer_eval import FRESH, verdict_shares

    of, given, right = verdict_shares(labelled["shared"]["verdict"]["test"])
    checks["verdicts given right >= 80% (shared test half, never tuned on)"] = right >= 0.8 * given
    checks["verdict accuracy >= 80% of all questions, 'unclear' counted wrong (shared test half)"] = right >= 0.8 * of
    natural = labelled["verdicts"]["test"]["all"]
    checks["no bottom line opposite to the record's (our natural test half, verdicts.jsonl)"] = not natural["opposite"]
    for half in ("test", "fresh", "fresh2"):
        compared = labelled["comparisons"][half]["all"]
        name = f"no bottom line opposite to the record's (comparisons {half} {'half' if half == 'test' else 'batch'})"
        checks[name] = not compared["opposite"]
    for batch in FRESH:  # each held-out batch written after the rules, where a set has one
        scope = labelled["refusals"]["out_of_scope"].get(batch)
        if scope:
            name = f"out-of-scope {batch} batch refused >= 90% (written after every rule)"
            checks[name] = scope["refused"] >= 0.9 * scope["of"]
        fresh = labelled["verdicts"].get(batch)
        if fresh:
            name = f"no bottom line opposite to the record's (our natural {batch} batch, verdicts.jsonl)"
            checks[name] = not fresh["all"]["opposite"]
        switched = [c["ok"] for c in labelled["switches"] if c["split"] == batch and c["kind"] == "switch"]
        if switched:
            checks[f"switches sharing words: {batch} batch all new topics (switches.jsonl)"] = all(switched)
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
    from answer_eval import report_lines

    for line in report_lines(labelled):
        print(line)
    print()
    for label, ok in checks.items():
        print(f"  [{'met' if ok else 'NOT met'}] {label}")
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
