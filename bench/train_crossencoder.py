"""Experiment: a relevance cross-encoder fine-tuned from the bundled MiniLM. Measured, and not shipped.

    pip install "sentence-transformers[train]" "huggingface-hub<1"  # datasets, accelerate: training only
    python bench/train_crossencoder.py           # pairs, training (~9 min on 2 cores), then the report below

The relevance issue suggested one: a cross-encoder reads the question and a record's evidence (its two
sentences closest to the question) together, so it could see that a near miss's drug is missing where
the bi-encoder sees only the shared disease. Pairs come from the **cross-encoder fold** of the shared
questions' tune half (``half_of`` "tune" and the id's sha256 modulo 3 not 0; the other third was kept
for fitting the relevance model on logits the cross-encoder never trained on):
- the gold record, as hybrid search finds it: a positive;
- the four best-ranked other records of its top 10: hard negatives;
- the gold record against the question with its rarest word the record holds swapped for a MeSH heading
  of the collection that the record lacks (two per question): a negative that differs from a positive
  only by the missing subject -- what a near miss is.
sentence-transformers' own ``CrossEncoder`` training (binary cross-entropy, one logit, 2 epochs).

What it gave (stop 24, this machine): 2,185 pairs, 514-582 s of training. Its logit separates the best
records of real questions from those of out-of-scope ones no better than the plain cosine on the dev
sets (ROC AUC 0.973 against 0.972), and worse on the held-out ones (80 natural questions against the
out-of-scope test half: 0.892 against 0.918). As a ninth signal of the scope model it refused the same
32 of 48 held-out out-of-scope questions as the same model without it (fit on the same third). Its int8
ONNX export (sentence-transformers' ``export_dynamic_quantized_onnx_model``, in the first run) is 23 MB
and costs 15 ms a question (median, one pair of 88 tokens): it took the warm ask from 43 to 76-80 ms.
With 313 training questions it saturates: half the held-out real questions got a negative logit. So the
product does not ship it; this script keeps the experiment repeatable, and prints that comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import CACHE, REPO, SHARED, corpus_index, half_of

sys.path.insert(0, str(REPO))
from qa import Retriever  # noqa: E402
from qa.ask.evaluate import load_qrels, load_queries  # noqa: E402
from qa.embed import quiet_third_party, resolve_model_path  # noqa: E402
from qa.store.lexical import terms  # noqa: E402

PAIRS = CACHE / "cross-pairs.jsonl"
MAX_LENGTH = 128  # question and evidence together, in tokens
NEGATIVES = 4
SWAPS = 2
EPOCHS = 2
BATCH = 16
SEED = 13


def cross_fold(query_id: str) -> bool:
    """True for the tune-half questions the cross-encoder trains on (two thirds of the tune half)."""
    return half_of(query_id) == "tune" and int(hashlib.sha256(query_id.encode()).hexdigest(), 16) % 3 != 0


def swapped(
    question: str, weights: dict[str, float], record_text: str, donors: list[str], rng: random.Random
) -> str | None:
    """``question`` with its rarest word that the record holds replaced by a subject the record lacks."""
    held = set(terms(record_text))
    words = {w.strip("?,.;:()"): w for w in question.split()}
    targets = [bare for bare in words if bare.lower() in held and weights.get(bare.lower(), 0) > 0 and len(bare) > 3]
    candidates = [d for d in donors if not set(terms(d)) & held]
    if not targets or not candidates:
        return None
    target = max(targets, key=lambda w: weights[w.lower()])  # the rarest: usually the subject (a disease, a drug)
    return question.replace(target, rng.choice(candidates), 1)


def make_pairs() -> list[dict]:
    from train_relevance import neutral

    queries = load_queries(SHARED / "pubmedqa" / "queries.jsonl")
    qrels = load_qrels(SHARED / "pubmedqa" / "qrels.tsv")
    fold = [(qid, text, next(iter(qrels[qid]))) for qid, text in queries.items() if cross_fold(qid)]
    rng = random.Random(SEED)
    pairs: list[dict] = []
    with Retriever(corpus_index(), relevance=neutral()) as retriever:
        # donors: the collection's one- and two-word MeSH headings (diseases, drugs, populations, outcomes),
        # lower-cased as a question would write them
        passages = retriever.snapshot.passages
        headings = {h for p in sorted(passages.pmids()) for h in passages.record(p).mesh}
        donors = sorted({h.lower() for h in headings if 1 <= len(h.split()) <= 2 and "," not in h and len(h) > 5})
        for qid, question, gold in fold:
            found = retriever._search(question, 10, mode="hybrid", filters=None, all_passages=False)
            texts = {h.pmid: evidence(found.sentences.get(h.pmid, ()), found.query_vector, h.text)
                     for h in found.hits}  # fmt: skip
            if gold not in texts:
                record = retriever.snapshot.passages.record(gold)
                if record is None:
                    continue
                sentences = retriever.snapshot.passages.sentences([gold])
                texts[gold] = evidence(sentences.get(gold, ()), found.query_vector, record.abstract[:600])
            pairs.append({"qid": qid, "question": question, "text": texts[gold], "label": 1, "kind": "gold"})
            others = [p for p in texts if p != gold][:NEGATIVES]
            pairs += [{"qid": qid, "question": question, "text": texts[p], "label": 0, "kind": "other"} for p in others]
            record = retriever.snapshot.passages.record(gold)
            whole = record.abstract if record is not None else texts[gold]
            for _ in range(SWAPS):
                weights = retriever.snapshot.lexical.term_weights(question)
                changed = swapped(question, weights, whole, rng.sample(donors, 40), rng)
                if changed and changed != question:
                    pairs.append({"qid": qid, "question": changed, "text": texts[gold], "label": 0, "kind": "swap"})
    return pairs


def train(pairs: list[dict]) -> Path:
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    base = resolve_model_path(None)
    model = CrossEncoder(base, num_labels=1, max_length=MAX_LENGTH, device="cpu")
    rng = random.Random(SEED)
    rng.shuffle(pairs)
    data = Dataset.from_dict({"question": [p["question"] for p in pairs], "text": [p["text"] for p in pairs],
                              "label": [float(p["label"]) for p in pairs]})  # fmt: skip
    positives = sum(p["label"] for p in pairs)
    loss = BinaryCrossEntropyLoss(model, pos_weight=__import__("torch").tensor((len(pairs) - positives) / positives))
    work = Path(tempfile.mkdtemp(prefix="cross-", dir=CACHE))
    args = CrossEncoderTrainingArguments(
        output_dir=str(work / "run"), num_train_epochs=EPOCHS, per_device_train_batch_size=BATCH,
        learning_rate=4e-5, warmup_ratio=0.1, seed=SEED, logging_steps=20, save_strategy="no", report_to="none",
        use_cpu=True, dataloader_num_workers=0,
    )  # fmt: skip
    CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss).train()
    model.save_pretrained(str(work / "model"))
    return work / "model"


def evidence(sentences, query, fallback: str = "") -> str:  # type: ignore[no-untyped-def]
    """What the cross-encoder reads of a record: its two sentences closest to the question, in their order."""
    if not sentences:
        return fallback[:1000]
    scores = np.array([float(s.vector @ query) for s in sentences])
    best = sorted(np.argsort(-scores)[:2].tolist(), key=lambda i: sentences[i].start)
    return " ".join(sentences[i].text for i in best)


def report(trained: Path) -> dict:
    """ROC AUC of the cross-encoder's logit and of the plain cosine, best record of real against out-of-scope
    questions, on dev and on held-out sets."""
    from common import ANSWER_CORPUS, BENCH, PARAPHRASE_QUERIES, write_results
    from sentence_transformers import CrossEncoder
    from sklearn.metrics import roc_auc_score
    from train_relevance import jsonl, neutral

    model = CrossEncoder(str(trained), device="cpu", max_length=MAX_LENGTH)
    oos = jsonl(BENCH / "answers" / "out_of_scope.jsonl")
    questions = jsonl(BENCH / "answers" / "questions.jsonl")
    turns = [(c["split"], c["turns"][0]["question"]) for c in jsonl(BENCH / "answers" / "conversations.jsonl")]
    paraphrases = list(load_queries(PARAPHRASE_QUERIES).values())
    sets = {
        "dev": ([q["question"] for q in questions if q["split"] == "dev"] + [t for s, t in turns if s == "dev"],
                [o["question"] for o in oos if o["split"] == "dev"]),
        "test": ([q["question"] for q in questions if q["split"] == "test"] + [t for s, t in turns if s == "test"]
                 + paraphrases, [o["question"] for o in oos if o["split"] == "test"]),
    }  # fmt: skip
    out: dict = {}
    for name, (real, off) in sets.items():
        rows = []
        for questions_, index in ((real, corpus_index(corpus=ANSWER_CORPUS)), (off, corpus_index())):
            with Retriever(index, relevance=neutral()) as retriever:
                for question in questions_:
                    found = retriever._search(question, 3, mode="hybrid", filters=None, all_passages=False)
                    top = found.hits[0]
                    text = evidence(found.sentences.get(top.pmid, ()), found.query_vector, top.text)
                    rows.append((float(model.predict([(question, text)])[0]), top.signals[0]))
        y = np.array([1] * len(real) + [0] * len(off))
        cross, cosine = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        out[name] = {"real": len(real), "out_of_scope": len(off), "auc_cross": round(roc_auc_score(y, cross), 3),
                     "auc_cosine": round(roc_auc_score(y, cosine), 3)}  # fmt: skip
        print(f"{name}: {len(real)} natural real vs {len(off)} out-of-scope, ROC AUC of the best record's "
              f"cross-encoder logit {out[name]['auc_cross']}, of its cosine {out[name]['auc_cosine']}")  # fmt: skip
    print(f"results: {write_results('crossencoder', out)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", action="store_true", help="only write the training pairs")
    args = parser.parse_args()
    quiet_third_party()
    started = time.perf_counter()
    pairs = make_pairs()
    PAIRS.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    kinds = {k: sum(p["kind"] == k for p in pairs) for k in ("gold", "other", "swap")}
    print(f"{len(pairs)} pairs ({kinds}) in {time.perf_counter() - started:.0f} s -> {PAIRS}", file=sys.stderr)
    if args.pairs:
        return
    trained = train(pairs)
    try:
        report(trained)
    finally:
        shutil.rmtree(trained.parent, ignore_errors=True)
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
