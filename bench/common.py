"""Shared by the benchmarks: where the data is, and the cached index of the 1,001 shared records."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED = Path(os.environ.get("QA_SHARED_DATA", REPO.parent / "shared" / "data"))
CORPUS = [SHARED / "pubmedqa" / "pubmed-1000.xml.gz", SHARED / "seed" / "25589616.xml"]
# bench/answers adds the unstructured abstracts of the sample files it labels
ANSWER_CORPUS = CORPUS + [
    *(SHARED / "samples" / "biopython" / f"pubmed{n}.xml" for n in (1, 2, 6, 7)),
    SHARED / "samples" / "biopython" / "pubmed_result2.txt",
]
SHARED_QUERIES = SHARED / "pubmedqa" / "queries.jsonl"
SHARED_QRELS = SHARED / "pubmedqa" / "qrels.tsv"
SHARED_DECISIONS = SHARED / "pubmedqa" / "decisions.tsv"  # PubMedQA's expert yes / no / maybe per question
PARAPHRASE_QUERIES = BENCH / "paraphrase" / "queries.jsonl"
PARAPHRASE_QRELS = BENCH / "paraphrase" / "qrels.tsv"
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"


def corpus_index(rebuild: bool = False, backend: str | None = None, corpus: list[Path] | None = None) -> Path:
    """Build the index of the shared corpus once; rebuild only when data, format or settings change.

    ``backend=None`` uses the default encoder backend; "torch" gives a second, PyTorch-built index.
    """
    sys.path.insert(0, str(REPO))
    from qa import build_index
    from qa.store import FORMAT_VERSION, IndexStore

    for f in corpus or CORPUS:
        if not f.is_file():
            sys.exit(f"missing {f}: clone next to ../shared or set QA_SHARED_DATA")
    from qa.embed import DEFAULT_BACKEND

    backend = backend or DEFAULT_BACKEND
    corpus = corpus or CORPUS
    name = "1001" if corpus == CORPUS else f"{len(corpus)}files"
    index = CACHE / f"index-{name}-{backend}"
    stamp = {
        "format": FORMAT_VERSION,
        "backend": backend,
        "files": [[f.name, f.stat().st_size, int(f.stat().st_mtime)] for f in corpus],
    }
    stamp_file = CACHE / f"index-{name}-{backend}.stamp.json"
    store = IndexStore(index)
    fresh = store.exists() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp
    if rebuild or not fresh:
        print(f"building the benchmark index in {index} (about a minute)...", file=sys.stderr)
        CACHE.mkdir(parents=True, exist_ok=True)
        build_index(corpus, index, full=True, backend=backend)
        stamp_file.write_text(json.dumps(stamp))
    return index


def load_decisions() -> list[dict[str, str]]:
    """The rows of decisions.tsv: query-id, pmid and PubMedQA's expert decision (yes, no or maybe)."""
    with open(SHARED_DECISIONS, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def half_of(query_id: str) -> str:
    """"tune" or "test": the split of the shared questions every trainer uses (sha256 of the id, last hex
    digit even or odd), so that no model is tuned on another's test half."""
    return "tune" if int(hashlib.sha256(query_id.encode()).hexdigest()[-1], 16) % 2 == 0 else "test"


def write_results(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def passage_vectors(index: Path):
    """Every passage vector of ``index``, as an (n, dim) float32 array."""
    sys.path.insert(0, str(REPO))
    from qa.store import IndexStore

    snapshot = IndexStore(index).open()
    try:
        return snapshot.vectors.vectors(snapshot.vectors.ids())
    finally:
        snapshot.close()


def clustered_vectors(index: Path, n: int, noise: float = 0.03):
    """``n`` synthetic unit vectors, each a real passage vector of ``index`` plus Gaussian noise (seeded)."""
    import numpy as np

    centers = passage_vectors(index)
    d = centers.shape[1]
    rng = np.random.default_rng(0)
    vectors = np.empty((n, d), dtype=np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        block = centers[rng.integers(0, len(centers), m)] + rng.normal(0, noise, (m, d)).astype(np.float32)
        vectors[i : i + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


_PROBE = """
import faiss, json, sys, time
import numpy as np
def rss():
    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) * 1024
path, queries, kind, nprobe = sys.argv[1], np.load(sys.argv[2]), sys.argv[3], int(sys.argv[4])
faiss.omp_set_num_threads(1)
before = rss()
flags = 0 if kind == 'flat' else faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
index = faiss.read_index(path, flags)
params = None if kind == 'flat' else faiss.SearchParametersIVF(nprobe=nprobe)
times, found = [], []
for row in queries:
    t = time.perf_counter()
    D, I = index.search(row[None, :], 10, params=params) if params else index.search(row[None, :], 10)
    times.append((time.perf_counter() - t) * 1000)
    found.append(I[0].tolist())
print(json.dumps({'rss_bytes': rss() - before, 'times': times, 'found': found}))
"""


def measure_index(path: Path, kind: str, queries, truth, nprobe: int) -> dict:
    """Size, resident memory, one-thread latency and recall@10 of a written FAISS index, read as a search
    would read it (IVF lists memory-mapped) in a fresh process; the file is removed afterwards.

    ``truth`` is the exact top 10 ids of each query.
    """
    import subprocess

    import numpy as np

    query_file = path.with_suffix(".queries.npy")
    np.save(query_file, queries)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path), str(query_file), kind, str(nprobe)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        query_file.unlink()
    out = json.loads(probe.stdout)
    truth = [list(t) for t in truth]
    size = path.stat().st_size
    path.unlink()
    return {
        "file_bytes": size,
        "file_mb": round(size / 1e6, 1),
        "resident_mb": round(out["rss_bytes"] / 1e6, 1),
        "p50_ms": round(float(np.percentile(out["times"], 50)), 2),
        "p99_ms": round(float(np.percentile(out["times"], 99)), 2),
        "recall_at_10": round(float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(out["found"], truth)])), 4),
        # the exact nearest passage among the 10 found: what a question needs (its best passage ranked)
        "nearest_in_10": round(float(np.mean([t[0] in f for f, t in zip(out["found"], truth)])), 4),
    }
