"""Sentence codes: what keeping the answer block's sentence vectors in fewer bytes costs in answers.

    python bench/sentence_codes.py     # a few minutes; prints a table, writes bench/results/sentence-codes.json

The index keeps each sentence's vector as a 3-bit code (``qa/store/compact.py``). To compare ways of
keeping them on the same vectors, this encodes every sentence of the two benchmark indexes again with
the index's encoder (batched as a build batches them, but in one call, so the vectors differ slightly
from a build's), then runs ``bench/quality.py``'s hand-labelled sets and its shared first-sentence
figure with the sentences the reader returns replaced by each codec's reading of those vectors:
float16 (format 6), int8 and int4 with a scale per vector, and the shipped 3-bit code.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from common import ANSWER_CORPUS, REPO, corpus_index, write_results  # noqa: I001

sys.path.insert(0, str(REPO))
from qa.store import snapshot as snapshot_module  # noqa: E402
from qa.store.compact import code_size, decode_vectors, encode_vectors, unit_rows  # noqa: E402


def scaled(bits: int):
    """Integer codes with one float16 scale per vector (the largest coordinate maps to the top level)."""
    top = 2 ** (bits - 1) - 1

    def codec(v: np.ndarray) -> np.ndarray:
        scale = np.abs(v).max(axis=1, keepdims=True) / top
        return unit_rows(np.clip(np.round(v / scale), -top, top) * scale)

    return codec


def three_bit(v: np.ndarray) -> np.ndarray:
    return unit_rows(decode_vectors(encode_vectors(v), v.shape[1]))


CODECS = {
    "float16 (format 6)": (768, lambda v: unit_rows(v.astype(np.float16).astype(np.float32))),
    "int8, a scale per vector": (386, scaled(8)),
    "int4, a scale per vector": (194, scaled(4)),
    "3-bit, fixed step (format 7)": (code_size(384), three_bit),
}


def fresh_vectors(indexes: list) -> dict[str, np.ndarray]:
    """Every stored sentence's text, encoded again (float32, unit length)."""
    from qa.embed import Embedder
    from qa.store import IndexStore

    texts: set[str] = set()
    for index in indexes:
        snapshot = IndexStore(index).open()
        try:
            pmids = sorted(snapshot.passages.pmids())
            for sentences in snapshot.passages.sentences(pmids).values():
                texts.update(s.text for s in sentences)
        finally:
            snapshot.close()
    ordered = sorted(texts)
    print(f"encoding {len(ordered):,} sentences ...", file=sys.stderr)
    vectors = Embedder().encode(ordered, exact=False)  # batched, as a build encodes sentences
    return dict(zip(ordered, np.asarray(vectors, dtype=np.float32)))


def with_codec(codec, fresh: dict[str, np.ndarray]):
    """The reader's ``sentences``, each vector replaced by ``codec``'s reading of the fresh one."""
    read = snapshot_module.Passages.sentences

    def sentences(self, pmids):
        out = read(self, pmids)
        for pmid, found in out.items():
            if found:
                coded = codec(np.stack([fresh[s.text] for s in found]))
                out[pmid] = [snapshot_module.StoredSentence(s.pmid, s.start, s.end, s.text, s.section, coded[i])
                             for i, s in enumerate(found)]  # fmt: skip
        return out

    return sentences


def main() -> None:
    import quality

    shared, answers = corpus_index(), corpus_index(corpus=ANSWER_CORPUS)
    fresh = fresh_vectors([shared, answers])
    originals = np.stack(list(fresh.values()))
    rows = {}
    read = snapshot_module.Passages.sentences
    for name, (size, codec) in CODECS.items():
        started = time.perf_counter()
        snapshot_module.Passages.sentences = with_codec(codec, fresh)
        try:
            labelled = quality.labelled_sets(answers, shared)
        finally:
            snapshot_module.Passages.sentences = read
        a, c, r = labelled["answers"], labelled["conversations"], labelled["refusals"]
        rows[name] = {
            "bytes_per_sentence": size,
            "mean_cosine_to_float32": round(float(np.mean(np.sum(codec(originals) * originals, axis=1))), 4),
            "answers_held": f"{a['all']['held']}/{a['all']['of']}",
            "answers_dev_test": f"{a['dev']['held']}/{a['test']['held']}",
            "follow_ups_held": f"{c['follow_up_answer_held']['n']}/{c['follow_up_answer_held']['of']}",
            "switches": f"{c['switch_equals_standalone']['n']}/{c['switch_equals_standalone']['of']}",
            "real_refused": f"{r['real_refused']}/{r['real']}",
            "out_of_scope_test_refused": f"{r['out_of_scope']['test']['refused']}/{r['out_of_scope']['test']['of']}",
            "shared_first_sentence": labelled["shared_first_sentence"]["from gold results/conclusions"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(f"  {name}: {rows[name]}", file=sys.stderr)
    keys = ("bytes_per_sentence", "mean_cosine_to_float32", "answers_held", "answers_dev_test", "follow_ups_held",
            "switches", "real_refused", "out_of_scope_test_refused", "shared_first_sentence")  # fmt: skip
    print(f"{'codec':30}" + "".join(f"{k[:14]:>16}" for k in keys))
    for name, row in rows.items():
        print(f"{name:30}" + "".join(f"{row[k]!s:>16}" for k in keys))
    print(f"wrote {write_results('sentence-codes', {'sentences': len(fresh), 'codecs': rows})}")


if __name__ == "__main__":
    main()
