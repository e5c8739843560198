"""Choose the answer block's weights on the dev half of bench/answers and report what each signal adds.

    python bench/tune_answers.py [--backend torch]

Retrieval runs once per question; weights are then tried on the cached candidates by coordinate
ascent (three passes over the signals, each over a small grid), maximising how often the answer
block holds a marked sentence on the *dev* questions and dev follow-ups, ties broken by how often
the first sentence is a marked one. The *test* half is only reported. The ablation sets each signal
of the chosen weights to zero in turn. Prints a table and writes bench/results/answer-weights.json.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, fields, replace

from common import ANSWER_CORPUS, REPO, corpus_index, write_results

sys.path.insert(0, str(REPO))

import answer_eval as ae  # noqa: E402

from qa import Retriever  # noqa: E402
from qa.ask.answer import DEFAULT_WEIGHTS, AnswerWeights, extract_answer  # noqa: E402
from qa.embed import quiet_third_party  # noqa: E402

SIGNALS = ("finding_section", "conclusion", "aim", "question", "rank")
GRID = {
    "finding_section": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3),
    "conclusion": (0.0, 0.02, 0.04, 0.08),
    "aim": (0.0, 0.1, 0.2, 0.4),
    "question": (0.0, 0.1, 0.2, 0.4),
    "rank": (0.0, 0.03, 0.05, 0.1),
    "same_record_margin": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3),
    "other_record_margin": (-1.0, 0.0, 0.05, 0.1, 0.15, 0.2),
}


def follow_up_items(retriever: Retriever) -> list[ae.Cached]:
    """Turn 2 of each follow-up, searched as chat searches it (with the first question), scored by its own words."""
    out = []
    for item in ae.load("conversations.jsonl"):
        if item["kind"] != "follow_up":
            continue
        first, second = item["turns"]
        found = retriever._search(f"{first['question']} {second['question']}", 5, mode="hybrid", filters=None,
                                  all_passages=False)  # fmt: skip
        vector = retriever.embedder.encode([second["question"]])[0]
        out.append(ae.Cached({**second, "split": item["split"], "kind": "follow_up"}, found.hits, found.sentences,
                             vector))  # fmt: skip
    return out


def previous_answer(c: ae.Cached) -> list[str]:
    """The answer block before this version: the matched passages' sentences of the top 3 hits, by cosine."""
    scored = []
    for hit in c.hits[:3]:
        for start, end, cosine in hit.sentences:
            scored.append((cosine * (1 - 0.05 * (hit.rank - 1)), cosine, hit.text[start:end]))
    scored.sort(key=lambda t: -t[0])
    chosen: list[str] = []
    best = None
    for score, cosine, text in scored:
        if cosine < 0.30:
            continue
        best = score if best is None else best
        if score < best - 0.12 or len(chosen) == 3:
            break
        if text not in chosen:
            chosen.append(text)
    return chosen


def score_previous(items: list[ae.Cached]) -> tuple[int, int, int]:
    held = first = 0
    for c in items:
        texts = previous_answer(c)
        held += ae.holds(texts, c.item["answers"])
        first += bool(texts) and ae.holds(texts[:1], c.item["answers"])
    return held, first, len(items)


def score(items: list[ae.Cached], weights: AnswerWeights) -> tuple[int, int, int]:
    held = first = 0
    for c in items:
        answer = extract_answer(c.hits, c.sentences, c.question_vector, weights)
        texts = [s.text for s in answer.sentences]
        held += ae.holds(texts, c.item["answers"])
        first += bool(texts) and ae.holds(texts[:1], c.item["answers"])
    return held, first, len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="encoder backend of the benchmark index (default onnx-int8)")
    args = parser.parse_args()
    quiet_third_party()
    retriever = Retriever(corpus_index(backend=args.backend, corpus=ANSWER_CORPUS))
    items = ae.cache_questions(retriever, ae.load("questions.jsonl")) + follow_up_items(retriever)
    dev = [c for c in items if c.item["split"] == "dev"]
    test = [c for c in items if c.item["split"] == "test"]

    best = DEFAULT_WEIGHTS
    best_score = score(dev, best)[:2]
    for _ in range(3):
        for f in fields(AnswerWeights):
            for value in GRID[f.name]:
                trial = replace(best, **{f.name: value})
                got = score(dev, trial)[:2]
                if got > best_score:
                    best, best_score = trial, got

    def row(label: str, weights: AnswerWeights) -> dict:
        d, t = score(dev, weights), score(test, weights)
        print(f"{label:<28} dev {d[0]:>2}/{d[2]} held, {d[1]:>2} first   test {t[0]:>2}/{t[2]} held, {t[1]:>2} first")
        return {"dev_held": d[0], "dev_first": d[1], "dev": d[2], "test_held": t[0], "test_first": t[1], "test": t[2]}

    print(f"{len(dev)} dev and {len(test)} test items (questions and follow-ups)")
    d, t = score_previous(dev), score_previous(test)
    label = "previous version"
    print(f"{label:<28} dev {d[0]:>2}/{d[2]} held, {d[1]:>2} first   test {t[0]:>2}/{t[2]} held, {t[1]:>2} first")
    table = {"chosen": row("chosen weights", best), "qa's defaults": row("qa's defaults", DEFAULT_WEIGHTS),
             "cosine only": row("cosine only", replace(best, **{n: 0.0 for n in SIGNALS}))}  # fmt: skip
    for f in fields(AnswerWeights):
        if f.name not in SIGNALS:
            continue
        table[f"without {f.name}"] = row(f"without {f.name}", replace(best, **{f.name: 0.0}))
    print("chosen:", asdict(best))
    path = write_results("answer-weights", {"chosen": asdict(best), "table": table})
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
