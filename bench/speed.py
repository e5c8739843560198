"""Speed benchmark: build throughput, encoder backends, incremental updates, start-up, query latency, 1M scale.

    python bench/speed.py            # prints one table, writes bench/results/speed.json (about 15 minutes)
    python bench/speed.py --skip-1m  # without the 1,000,000-passage part
    python bench/speed.py --only parallel --runs 2  # serial vs parallel chunking against raw encode: 4 to 9
                                                    # minutes here, by load; writes bench/results/speed-parallel.json
    python bench/speed.py --only 1m  # ivf-sq8 and ivf-pq at 1,000,000 synthetic passages
    python bench/speed.py --only ray --runs 1  # the Ray engine (qa build --engine ray) against a local build of
                                               # the same files: about 3 minutes here; writes speed-ray.json
    python bench/speed.py --only ask  # warm ask on shared titles and on natural questions, cold ask: writes
                                      # speed-ask.json

Every figure is the median of several runs; ratios compare figures measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (
    BENCH,
    CACHE,
    CORPUS,
    REPO,
    SHARED_QRELS,
    SHARED_QUERIES,
    clustered_vectors,
    corpus_index,
    measure_index,
    write_results,
)

sys.path.insert(0, str(REPO))

from qa import Retriever, build_index  # noqa: E402
from qa.ask.evaluate import load_queries  # noqa: E402
from qa.build.batches import sentence_rows  # noqa: E402
from qa.build.chunk_pool import auto_workers, available_cpus  # noqa: E402
from qa.embed import Chunker, ChunkSettings, Embedder, quiet_third_party  # noqa: E402  # noqa: E402
from qa.embed.onnx import encoder_dir_name, encoder_model_file  # noqa: E402
from qa.ingest import read_source
from qa.records import Record, record_to_dict  # noqa: E402
from qa.store import DEFAULT_NPROBE, IndexStore, VectorIndex  # noqa: E402

QUESTION = "Which IL-6 inhibitors are clinically registered?"
YES_NO_QUESTION = "Do statins before cardiac surgery prevent atrial fibrillation?"  # a bottom line: e5 is loaded


def median_time(fn, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def chunk_texts() -> list[str]:
    records = [r for f in CORPUS for r in read_source(f) if isinstance(r, Record)]
    embedder = Embedder()
    chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, ChunkSettings())
    return [c.embed_text for r in records for c in chunker.chunk(r)]


def full_builds(runs: int) -> dict:
    target = CACHE / "speed-build"
    build_index(CORPUS, target, full=True)  # warm-up: the int8 export is made once per index
    seconds, all_runs = median_time(lambda: build_index(CORPUS, target, full=True), runs)
    report = build_index(CORPUS, target, full=True)
    return {"seconds": round(seconds, 2), "runs": [round(t, 2) for t in all_runs], "chunks": report.chunks,
            "chunks_per_second": round(report.chunks / seconds, 1), "index": target,
            "passage_seconds": round(report.embed_seconds, 2), "sentences": report.sentences_embedded,
            "sentence_seconds": round(report.sentence_seconds, 2)}  # fmt: skip


def parallel_builds(runs: int, workers: int) -> dict:
    """Full builds of the 1,001 records with chunking in this process and in ``workers`` processes, against
    raw encoding of exactly what such a build encodes (its passages one at a time, its sentences batched).

    Serial and parallel runs alternate, so that the load of this shared machine weighs on both alike.
    """
    target = CACHE / "speed-build"
    encoder = target / "models" / encoder_dir_name(None)
    if not encoder_model_file(encoder).is_file():
        build_index(CORPUS, target, full=True, workers=1)  # the int8 export is made once per index, not timed
    times: dict[int, list[float]] = {1: [], workers: []}
    chunks = 0
    for _ in range(runs):
        for w in times:
            t0 = time.perf_counter()
            chunks = build_index(CORPUS, target, full=True, workers=w).chunks
            times[w].append(time.perf_counter() - t0)
    builds = {
        label: {"workers": w, "seconds": round(statistics.median(times[w]), 2), "runs": [round(t, 2) for t in times[w]],
                "chunks_per_second": round(chunks / statistics.median(times[w]), 1)}
        for label, w in (("serial", 1), ("parallel", workers))
    }  # fmt: skip

    records = [r for f in CORPUS for r in read_source(f) if isinstance(r, Record)]
    embedder = Embedder(backend="onnx-int8", encoder_dir=encoder)
    chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, ChunkSettings())
    t0 = time.perf_counter()
    all_chunks = [c for r in records for c in chunker.chunk(r)]
    chunk_seconds = time.perf_counter() - t0
    abstracts = {r.pmid: r.abstract for r in records}
    passages = [c.embed_text for c in all_chunks]
    sentences = [abstracts[pmid][s:e] for pmid, s, e, _ in sentence_rows(all_chunks)]
    embedder.encode(passages[:16])  # load
    raw = {"passages": [], "sentences": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        embedder.encode(passages)  # one at a time, as a build does (exact=True)
        raw["passages"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        embedder.encode(sentences, exact=False)  # batched, as a build does
        raw["sentences"].append(time.perf_counter() - t0)
    passage_s, sentence_s = statistics.median(raw["passages"]), statistics.median(raw["sentences"])
    raw_all = len(passages) / (passage_s + sentence_s)  # passages per second of everything a build encodes
    parallel = builds["parallel"]["chunks_per_second"]
    return {
        "cpus": available_cpus(),
        "auto_workers": auto_workers(len(records)),
        "passages": len(passages),
        "sentences": len(sentences),
        "chunk_only_per_second": round(len(passages) / chunk_seconds, 1),
        "builds": builds,
        "raw_encode": {
            "passages_per_second": round(len(passages) / passage_s, 1),
            "passage_seconds": round(passage_s, 2),
            "sentence_seconds": round(sentence_s, 2),
            "all_per_second": round(raw_all, 1),
        },
        "parallel_vs_serial": round(parallel / builds["serial"]["chunks_per_second"], 3),
        "build_vs_raw_encode": {
            "passages_only": round(parallel / (len(passages) / passage_s), 3),
            "passages_and_sentences": round(parallel / raw_all, 3),
            "serial_passages_and_sentences": round(builds["serial"]["chunks_per_second"] / raw_all, 3),
        },
    }


def parallel_table(p: dict) -> list[tuple[str, str]]:
    b, raw, ratio = p["builds"], p["raw_encode"], p["build_vs_raw_encode"]
    return [
        ("full build, chunking in-process (--workers 1)",
         f"{b['serial']['seconds']} s, {b['serial']['chunks_per_second']} passages/s"),
        (f"full build, chunking in {b['parallel']['workers']} processes (--workers {b['parallel']['workers']})",
         f"{b['parallel']['seconds']} s, {b['parallel']['chunks_per_second']} passages/s "
         f"({p['parallel_vs_serial']:.2f}x serial)"),
        ("chunking alone, one process", f"{p['chunk_only_per_second']} passages/s"),
        ("raw encode: passages / + sentences (onnx-int8)",
         f"{raw['passages_per_second']}/s / {raw['all_per_second']} passages/s "
         f"({raw['passage_seconds']} s + {raw['sentence_seconds']} s for {p['sentences']:,} sentences)"),
        ("parallel build / raw encode of passages + sentences",
         f"{ratio['passages_and_sentences']:.2f} (overhead {1 / ratio['passages_and_sentences'] - 1:.0%}; "
         f"serial {ratio['serial_passages_and_sentences']:.2f})"),
        ("parallel build / raw encode of passages only", f"{ratio['passages_only']:.2f}"),
        ("cpus / --workers auto would pick", f"{p['cpus']} / {p['auto_workers']}"),
    ]  # fmt: skip


RAY_PARTS = 4  # the 1,000 shared records as this many JSONL files (a file is the Ray engine's unit of work)


def ray_builds(runs: int, workers: int) -> dict:
    """The Ray engine against a local build of the same files on this machine: the shared 1,001 records as
    ``RAY_PARTS`` JSONL files plus the seed record, a local Ray of ``workers`` CPUs with one worker each.

    The Ray figure is end to end (Ray start-up and shut-down, the shards, the index made from them) and
    starts from an empty shard folder every run; the local build is ``qa build``'s default (chunking in
    ``auto_workers`` processes). Runs alternate, as in ``parallel_builds``. The int8 export is made once
    beforehand, not timed. Per-worker rates divide the passages by the time the workers spent on them.
    """
    import ray

    from qa.build import BuildOptions, index_from_shards
    from qa.build.shards.format import SHARD_MANIFEST, ShardManifest
    from qa.build.shards.ray import RayOptions, build_with_ray

    work = CACHE / "speed-ray"
    files = _split_corpus(work / "sources")
    local, ray_index, shards = work / "local-index", work / "ray-index", work / "shards"
    encoder = local / "models" / encoder_dir_name(None)
    if not encoder_model_file(encoder).is_file():
        build_index(files, local, full=True)  # the int8 export, once; not timed
    if not (ray_index / "models").is_dir():
        shutil.copytree(local / "models", ray_index / "models")
    local_workers = auto_workers(1001)
    full, where = BuildOptions(full=True), RayOptions(shards=shards, num_cpus=workers, workers=workers)
    times: dict[str, list[float]] = {"local": [], "ray": []}
    passages = 0
    seconds = {"read": 0.0, "chunk": 0.0, "embed": 0.0, "sentences": 0.0, "total": 0.0}
    for _ in range(runs):
        t0 = time.perf_counter()
        passages = build_index(files, local, full=True, workers=local_workers).chunks
        times["local"].append(time.perf_counter() - t0)
        shutil.rmtree(shards, ignore_errors=True)
        t0 = time.perf_counter()
        report = build_with_ray(files, ray_index, full, where)
        times["ray"].append(time.perf_counter() - t0)
        assert report.chunks == passages and report.shards_made == len(files)
        manifests = [ShardManifest.from_file(p) for p in shards.glob(f"*/{SHARD_MANIFEST}")]
        seconds = {k: sum(m.seconds.get(k, 0.0) for m in manifests) for k in seconds}
    t0 = time.perf_counter()
    build_with_ray(files, ray_index, full, where)
    rerun = time.perf_counter() - t0
    fresh = work / "from-shards-index"
    shutil.rmtree(fresh, ignore_errors=True)
    t0 = time.perf_counter()
    index_from_shards(shards, fresh)
    from_shards = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.shutdown()
    start_stop = time.perf_counter() - t0
    local_s, ray_s = statistics.median(times["local"]), statistics.median(times["ray"])
    same = _compare_indexes(local, ray_index)
    return {
        "same_as_local": same,
        "cpus": available_cpus(),
        "files": len(files),
        "passages": passages,
        "local": {"workers": local_workers, "seconds": round(local_s, 2), "runs": [round(t, 2) for t in times["local"]],
                  "passages_per_second": round(passages / local_s, 1)},
        "ray": {"workers": workers, "seconds": round(ray_s, 2), "runs": [round(t, 2) for t in times["ray"]],
                "passages_per_second": round(passages / ray_s, 1),
                "worker_seconds": {k: round(v, 2) for k, v in seconds.items()},
                "per_worker_passages_per_second": round(passages / seconds["total"], 1),
                "per_worker_encode_passages_per_second": round(passages / (seconds["embed"] + seconds["sentences"]), 1),
                "ray_start_and_stop_seconds": round(start_stop, 2),
                "from_shards_seconds": round(from_shards, 2),
                "rerun_all_shards_complete_seconds": round(rerun, 2)},
        "ray_vs_local": round(local_s / ray_s, 3),
    }  # fmt: skip


def _compare_indexes(local: Path, other: Path) -> dict:
    """Whether two builds of the same files agree: passages, passage vectors and MRR@10 on the shared questions."""
    a, b = IndexStore(local).open(), IndexStore(other).open()
    try:
        ids = sorted(a.vectors.ids().tolist())
        same_ids = ids == sorted(b.vectors.ids().tolist())
        rows_a, rows_b = a.passages.chunks(ids), b.passages.chunks(ids)
        same_rows = same_ids and all(
            (rows_a[i].pmid, rows_a[i].start, rows_a[i].end, rows_a[i].section, rows_a[i].text)
            == (rows_b[i].pmid, rows_b[i].start, rows_b[i].end, rows_b[i].section, rows_b[i].text)
            for i in ids
        )
        cosines = np.sum(a.vectors.vectors(ids) * b.vectors.vectors(ids), axis=1) if same_ids else np.zeros(1)
    finally:
        a.close()
        b.close()
    return {"passages": len(ids), "same_passage_rows": same_rows, "min_vector_cosine": round(float(cosines.min()), 6),
            "mrr@10_local": eval_mrr(local), "mrr@10_ray": eval_mrr(other)}  # fmt: skip


def _split_corpus(folder: Path) -> list[Path]:
    """The shared records as ``RAY_PARTS`` JSONL files (made once), then the seed record's XML."""
    parts = [folder / f"part-{i}.jsonl" for i in range(RAY_PARTS)]
    if not all(p.is_file() for p in parts):
        folder.mkdir(parents=True, exist_ok=True)
        records = [r for r in read_source(CORPUS[0]) if isinstance(r, Record)]
        size = -(-len(records) // RAY_PARTS)
        for i, path in enumerate(parts):
            path.write_text("".join(json.dumps(record_to_dict(r)) + "\n" for r in records[i * size : (i + 1) * size]))
    return [*parts, CORPUS[1]]


def ray_table(r: dict) -> list[tuple[str, str]]:
    local, ray = r["local"], r["ray"]
    seconds = ray["worker_seconds"]
    return [
        (f"local build, {r['files']} files (--workers {local['workers']})",
         f"{local['seconds']} s, {local['passages_per_second']} passages/s"),
        (f"Ray build, {ray['workers']} workers on a local Ray (--engine ray)",
         f"{ray['seconds']} s, {ray['passages_per_second']} passages/s ({r['ray_vs_local']:.2f}x local), end to end"),
        ("  per Ray worker (CPU): parse + chunk + embed + write",
         f"{ray['per_worker_passages_per_second']} passages/s ({seconds['total']} s of worker time)"),
        ("  per Ray worker: encoding alone (passages + sentences)",
         f"{ray['per_worker_encode_passages_per_second']} passages/s "
         f"({seconds['embed']} s + {seconds['sentences']} s)"),
        ("  Ray start + stop / index from the shards alone",
         f"{ray['ray_start_and_stop_seconds']} s / {ray['from_shards_seconds']} s"),
        ("  rerun, every shard complete (checked, index remade)", f"{ray['rerun_all_shards_complete_seconds']} s"),
        ("Ray vs local: same passage rows / min vector cosine",
         f"{r['same_as_local']['same_passage_rows']} / {r['same_as_local']['min_vector_cosine']} "
         f"({r['same_as_local']['passages']:,} passages)"),
        ("Ray vs local: MRR@10 dense, hybrid",
         f"{r['same_as_local']['mrr@10_ray']} vs {r['same_as_local']['mrr@10_local']}"),
    ]  # fmt: skip


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:{width}}  {value}")


def backend_throughput(texts: list[str], onnx_dir: Path, runs: int) -> dict:
    out = {}
    for backend in ("onnx-int8", "torch"):
        embedder = Embedder(backend=backend, encoder_dir=onnx_dir if backend == "onnx-int8" else None)
        embedder.encode(texts[:16])  # load
        seconds, _ = median_time(lambda e=embedder: e.encode(texts), runs)
        out[backend] = round(len(texts) / seconds, 1)
    return out


def eval_mrr(index: Path) -> dict:
    cmd = [sys.executable, "-m", "qa.cli", "eval", str(SHARED_QUERIES), str(SHARED_QRELS), "--index", str(index),
           "--mode", "dense", "--mode", "hybrid", "--json"]  # fmt: skip
    data = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO).stdout)
    return {mode: data[mode]["mrr@10"] for mode in data}


def incremental(index: Path, runs: int) -> dict:
    records = [r for r in read_source(CORPUS[0]) if isinstance(r, Record)][100:110]
    times = []
    for run in range(runs):
        work = Path(tempfile.mkdtemp(dir=CACHE))
        try:
            copy = work / "index"
            shutil.copytree(index, copy)
            changed = work / "changed.jsonl"
            with open(changed, "w") as fh:
                for r in records:
                    d = record_to_dict(r)
                    d["sections"][-1]["text"] += f" Revised text, run {run}."
                    fh.write(json.dumps(d) + "\n")
            t0 = time.perf_counter()
            report = build_index([changed], copy)
            times.append(time.perf_counter() - t0)
            assert report.updated == 10 and report.added == 0
            noop_t0 = time.perf_counter()
            assert build_index([changed], copy).noop
            noop = time.perf_counter() - noop_t0
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return {"seconds": round(statistics.median(times), 2), "runs": [round(t, 2) for t in times],
            "chunks_embedded": report.chunks_embedded, "chunks_reused": report.chunks_reused,
            "noop_seconds": round(noop, 2)}  # fmt: skip


def cold_ask(index: Path, runs: int, question: str = QUESTION) -> dict:
    """A new ``qa ask`` process per run. ``YES_NO_QUESTION`` also loads e5 and reads its bottom line with it."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qa.cli", "ask", question, "--index", str(index)], check=True,
                       capture_output=True, cwd=REPO)  # fmt: skip
        times.append(time.perf_counter() - t0)
    return {"median_seconds": round(statistics.median(times), 3), "runs": [round(t, 3) for t in times]}


def warm_queries(index: Path, n: int) -> dict:
    questions = list(load_queries(SHARED_QUERIES).values())[:n]
    out = {}
    with Retriever(index) as retriever:
        retriever.warm_up()
        for label, fn in (
            ("search", lambda q: retriever.search(q, k=5, highlight=False)),
            ("ask", lambda q: retriever.ask(q, k=5)),
        ):
            times = []
            for q in questions:
                t0 = time.perf_counter()
                fn(q)
                times.append((time.perf_counter() - t0) * 1000)
            out[label] = {"p50_ms": round(float(np.percentile(times, 50)), 1),
                          "p99_ms": round(float(np.percentile(times, 99)), 1)}  # fmt: skip
    return out


def natural_questions() -> list[str]:
    """Questions as people write them: the hand-labelled sets of bench/answers and bench/paraphrase."""
    answers = BENCH / "answers"
    out = []
    for name, field in (("questions.jsonl", "question"), ("out_of_scope.jsonl", "question")):
        with open(answers / name, encoding="utf-8") as fh:
            out += [json.loads(line)[field] for line in fh if line.strip()]
    with open(answers / "conversations.jsonl", encoding="utf-8") as fh:
        out += [json.loads(line)["turns"][0]["question"] for line in fh if line.strip()]
    return out + list(load_queries(BENCH / "paraphrase" / "queries.jsonl").values())


def ask_latency(index: Path, runs: int) -> dict:
    """Warm ``ask`` (relevance, answer and verdict included) on short titles and on natural questions; cold ask."""
    titles = list(load_queries(SHARED_QUERIES).values())[:200]
    out: dict = {}
    with Retriever(index) as retriever:
        retriever.warm_up()
        for label, questions in (("titles", titles), ("natural", natural_questions())):
            times = []
            for q in questions:
                t0 = time.perf_counter()
                retriever.ask(q, k=5)
                times.append((time.perf_counter() - t0) * 1000)
            out[label] = {"questions": len(questions), "p50_ms": round(float(np.percentile(times, 50)), 1),
                          "p99_ms": round(float(np.percentile(times, 99)), 1)}  # fmt: skip
    out["cold_ask"] = cold_ask(index, max(3, runs))
    out["cold_ask_yes_no"] = cold_ask(index, max(3, runs), YES_NO_QUESTION)
    return out


def ask_table(a: dict) -> list[tuple[str, str]]:
    return [
        (f"warm ask p50 / p99, shared titles ({a['titles']['questions']})",
         f"{a['titles']['p50_ms']} / {a['titles']['p99_ms']} ms"),
        (f"warm ask p50 / p99, natural questions ({a['natural']['questions']})",
         f"{a['natural']['p50_ms']} / {a['natural']['p99_ms']} ms"),
        ("cold `qa ask` (new process), median", f"{a['cold_ask']['median_seconds']} s"),
        ("  the same, a yes/no question (loads e5)", f"{a['cold_ask_yes_no']['median_seconds']} s"),
    ]  # fmt: skip


def million(index: Path, n: int = 1_000_000, queries: int = 200) -> dict:
    """1M synthetic passages clustered around the real ones, as ivf-sq8 and as ivf-pq; real questions as queries.

    1M is the largest size that fits here: the exact index the recall is measured against holds 1.5 GB of
    float32 vectors, and 10M would need 15 GB of the machine's 24 beside the IVF being trained.
    """
    import faiss

    vectors = clustered_vectors(index, n)
    d = vectors.shape[1]
    retr = Retriever(index)
    qtexts = list(load_queries(SHARED_QUERIES).values())[:queries]
    qvecs = retr.embedder.encode(qtexts)
    retr.close()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
    flat.add_with_ids(vectors, np.arange(n, dtype=np.int64))
    del vectors
    _, truth = flat.search(qvecs, 10)
    out = {}
    for kind in ("ivf-sq8", "ivf-pq"):
        t0 = time.perf_counter()
        ivf = VectorIndex(flat).converted(kind)
        build_seconds = time.perf_counter() - t0
        path = CACHE / f"{kind}-1m.faiss"
        ivf.write(path)
        del ivf
        out[kind] = measure_index(path, kind, qvecs, truth.tolist(), DEFAULT_NPROBE)
        out[kind].update({"passages": n, "index_type": kind, "nprobe": DEFAULT_NPROBE,
                          "build_seconds": round(build_seconds, 1)})  # fmt: skip
    return out


def million_table(results: dict) -> list[tuple[str, str]]:
    rows = []
    for kind, m in results.items():
        rows += [
            (f"1M passages: {kind} query p50 / p99",
             f"{m['p50_ms']} / {m['p99_ms']} ms (1 thread, nprobe {m['nprobe']})"),
            (f"1M passages: {kind} recall@10 vs exact", f"{m['recall_at_10']}"),
            (f"1M passages: {kind} resident memory / file", f"{m['resident_mb']} MB / {m['file_mb']} MB"),
            (f"1M passages: {kind} training + adding", f"{m['build_seconds']} s"),
        ]  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-1m", action="store_true", help="leave out the 1,000,000-passage part")
    parser.add_argument("--runs", type=int, default=3, help="runs per timed figure (default 3; cold ask uses 5)")
    parser.add_argument(
        "--only",
        choices=["parallel", "ray", "1m", "ask"],
        help="one part: parallel (vs serial chunking), ray (vs a local build), 1m (ivf-sq8 and ivf-pq at 1M) "
        "or ask (warm ask on titles and natural questions, cold ask)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="chunking processes of the parallel build; Ray workers (default 2)"
    )
    args = parser.parse_args()
    quiet_third_party()
    CACHE.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": f"{os.cpu_count()} cores"}
    if args.only:
        parts = {  # --only NAME: (results key, results file, what runs, how its rows read)
            "parallel": ("parallel_build", "speed-parallel", lambda: parallel_builds(args.runs, args.workers),
                         parallel_table),
            "1m": ("one_million", "speed-1m", lambda: million(corpus_index()), million_table),
            "ray": ("ray_build", "speed-ray", lambda: ray_builds(args.runs, args.workers), ray_table),
            "ask": ("ask", "speed-ask", lambda: ask_latency(corpus_index(), args.runs), ask_table),
        }  # fmt: skip
        key, name, run, table = parts[args.only]
        results[key] = run()
        path = write_results(name, results)
        print_table(table(results[key]))
        print(f"\nwrote {path.relative_to(REPO)}")
        return

    build = full_builds(args.runs)
    index = build.pop("index")
    texts = chunk_texts()
    sample = texts[:: max(1, len(texts) // 1000)][:1000]
    throughput = backend_throughput(sample, index / "models" / encoder_dir_name(None), args.runs)
    results["build"] = build
    results["encode_chunks_per_second"] = throughput
    results["build_vs_raw_encode"] = round(build["chunks_per_second"] / throughput["onnx-int8"], 3)
    torch_index = corpus_index(backend="torch")
    results["mrr@10"] = {"onnx-int8": eval_mrr(index), "torch": eval_mrr(torch_index)}
    results["incremental_10_changed"] = incremental(index, args.runs)
    results["incremental_10_changed"]["ratio_to_full_build"] = round(
        results["incremental_10_changed"]["seconds"] / build["seconds"], 4
    )
    results["parallel_build"] = parallel_builds(args.runs, args.workers)
    results["cold_ask"] = cold_ask(index, 5)
    results["warm_query"] = warm_queries(index, 200)
    if not args.skip_1m:
        results["one_million"] = million(index)
    path = write_results("speed", results)

    b, t, inc, cold, warm = (
        build,
        throughput,
        results["incremental_10_changed"],
        results["cold_ask"],
        results["warm_query"],
    )
    rows = [
        ("full build, 1,001 records (onnx-int8)",
         f"{b['seconds']} s, {b['chunks']:,} passages, {b['chunks_per_second']}/s"),
        ("  of which encoding passages / sentences",
         f"{b['passage_seconds']} s / {b['sentence_seconds']} s ({b['sentences']:,} sentences)"),
        ("raw encode on the same passages", f"onnx-int8 {t['onnx-int8']}/s, torch fp32 {t['torch']}/s "
                                            f"({t['onnx-int8'] / t['torch']:.2f}x)"),
        ("build throughput / raw encode (onnx-int8)", f"{results['build_vs_raw_encode']:.2f} "
                                                      f"(overhead {1 / results['build_vs_raw_encode'] - 1:.0%})"),
        ("MRR@10 shared, dense / hybrid, onnx-int8", f"{results['mrr@10']['onnx-int8']['dense']} / "
                                                     f"{results['mrr@10']['onnx-int8']['hybrid']}"),
        ("MRR@10 shared, dense / hybrid, torch fp32", f"{results['mrr@10']['torch']['dense']} / "
                                                      f"{results['mrr@10']['torch']['hybrid']}"),
        ("update of 10 changed records", f"{inc['seconds']} s ({inc['ratio_to_full_build']:.1%} of a full build), "
                                         f"{inc['chunks_embedded']} embedded, {inc['chunks_reused']} reused"),
        ("re-run on unchanged input", f"{inc['noop_seconds']} s, no new snapshot"),
        ("cold `qa ask` (new process), median of 5", f"{cold['median_seconds']} s"),
        ("warm search p50 / p99", f"{warm['search']['p50_ms']} / {warm['search']['p99_ms']} ms"),
        ("warm ask (with answer) p50 / p99", f"{warm['ask']['p50_ms']} / {warm['ask']['p99_ms']} ms"),
    ]  # fmt: skip
    rows += parallel_table(results["parallel_build"])
    rows += million_table(results.get("one_million", {}))
    print_table(rows)
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
