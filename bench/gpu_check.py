"""GPU check (issue 13): fp16 against fp32 on CUDA, and end-to-end build throughput on the 1k and 20k corpora.

    python bench/gpu_check.py            # on a machine with CUDA: about 5 minutes on one H100 (estimated)
    python bench/gpu_check.py --dry-run  # the same steps on the CPU with 12 records (--device cpu --small)

Steps, each written to the JSON as soon as it is done, so a run cut short keeps what it measured:
  1. the corpora, as gzipped JSONL: the 1,001 shared records ("1k") and 20 copies of them with new
     PMIDs ("20k", bench/corpus20k.py);
  2. ``qa build --full --backend torch --device DEVICE --json`` of each in a fresh process, timed end to
     end (imports, model load, reading, chunking, encoding, writing): passages per second. On CUDA this
     runs in fp16 (the default there);
  3. the 1k corpus again in the other precision, through the API (``precision=``); the cosine of every
     passage vector to its counterpart, and MRR@10 (dense and hybrid) on the shared questions with each
     index, questions encoded in the index's precision;
  4. raw encode (``Embedder.encode`` alone, length-sorted batches) of the 1k and 20k passages in fp16 and fp32;
  5. a table, and bench/results/gpu.json (gpu-dry-run.json with --dry-run).

Targets: cosine >= 0.999 for every passage, fp16 MRR@10 at most 0.002 below fp32's (four of the 1,000
questions moving one rank), and 5,000 passages/s end to end on the 20k corpus. The script exits 1
without CUDA (before any work) and when a quality target is missed; the throughput target is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE, REPO, SHARED_QRELS, SHARED_QUERIES, write_results
from corpus20k import shared_records, write_corpus

sys.path.insert(0, str(REPO))

from qa import Retriever, build_index  # noqa: E402
from qa.ask.evaluate import evaluate, load_qrels, load_queries  # noqa: E402
from qa.build.chunk_pool import ChunkPool, auto_workers, available_cpus  # noqa: E402
from qa.embed import Chunker, ChunkSettings, Embedder, quiet_third_party, resolve_precision  # noqa: E402  # noqa: E402
from qa.store import IndexStore  # noqa: E402

MIN_COSINE = 0.999
MAX_MRR_DROP = 0.002
TARGET_PER_SECOND = 5000  # end to end on the 20k corpus
SMALL_RECORDS = 12


def require_device(device: str) -> dict[str, Any]:
    """Stop at once, in one line, when the device asked for is not there."""
    try:
        import torch
    except ImportError:
        sys.exit("gpu_check: torch is not installed; install torch, then pip install -e .")
    facts: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "cpus": available_cpus()}
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            build = torch.version.cuda or "none"
            sys.exit(
                f"gpu_check: no CUDA device here (torch {torch.__version__}, CUDA build {build}); "
                "run it on a GPU machine, or try the script on the CPU with --dry-run"
            )
        facts["gpu"] = torch.cuda.get_device_name(torch.device(device))
    else:
        facts["gpu"] = None
    facts["machine"] = platform.node()
    return facts


def cli_build(files: list[Path], index: Path, device: str, workers: int | None) -> dict[str, Any]:
    """``qa build`` in a fresh process, timed from start to exit."""
    cmd = [sys.executable, "-m", "qa.cli", "build", *map(str, files), "--index", str(index), "--full",
           "--backend", "torch", "--device", device, "--json"]  # fmt: skip
    if workers:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"gpu_check: {' '.join(cmd[2:5])} ... failed: {(proc.stderr.strip() or proc.stdout.strip())[-600:]}")
    report = json.loads(proc.stdout)
    return {
        "command": " ".join(["qa", *cmd[3:]]),
        "records": report["records_indexed"],
        "passages": report["chunks"],
        "sentences": report["sentences_embedded"],
        "wall_seconds": round(wall, 2),
        "build_seconds": report["seconds"],
        "passage_encode_seconds": report["embed_seconds"],
        "sentence_encode_seconds": report["sentence_seconds"],
        "passages_per_second": round(report["chunks"] / wall, 1),
    }


def passage_vectors(index: Path) -> tuple[list[tuple[str, int, int, int]], np.ndarray]:
    """Every passage's key (pmid, ordinal, start, end) and vector, in id order."""
    snap = IndexStore(index).open()
    try:
        ids = sorted(int(i) for i in snap.vectors.ids())
        rows = snap.passages.chunks(ids)
        return [(rows[i].pmid, rows[i].ordinal, rows[i].start, rows[i].end) for i in ids], snap.vectors.vectors(ids)
    finally:
        snap.close()


def mrr(index: Path, device: str, precision: str, pmids: set[str]) -> dict[str, Any]:
    """MRR@10 on the shared questions whose relevant record is in the corpus, encoded in ``precision``."""
    queries = load_queries(SHARED_QUERIES)
    qrels = {q: rel for q, rel in load_qrels(SHARED_QRELS).items() if set(rel) <= pmids}
    embedder = Embedder(backend="torch", device=device, precision=precision)
    out: dict[str, Any] = {"questions": len([q for q in queries if q in qrels])}
    with Retriever(index, embedder=embedder) as retriever:
        for mode in ("dense", "hybrid"):
            out[mode] = round(evaluate(retriever, queries, qrels, mode=mode).mrr_at_10, 4)
    return out


def raw_encode(texts: list[str], copies: int, device: str) -> dict[str, Any]:
    """Passages per second of the encoder alone, on the 1k passages and on the 20k corpus's, per precision."""
    out: dict[str, Any] = {}
    vectors = {}
    for precision in ("fp16", "fp32"):
        embedder = Embedder(backend="torch", device=device, precision=precision)
        embedder.encode(texts[:256])  # load, warm up
        t0 = time.perf_counter()
        vectors[precision] = embedder.encode(texts)
        small = time.perf_counter() - t0
        t0 = time.perf_counter()
        embedder.encode(texts * copies)
        large = time.perf_counter() - t0
        out[precision] = {"1k_per_second": round(len(texts) / small, 1),
                          "20k_per_second": round(len(texts) * copies / large, 1)}  # fmt: skip
        del embedder
    cosines = (vectors["fp16"] * vectors["fp32"]).sum(axis=1)
    out["cosine_min"] = round(float(cosines.min()), 6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--small", action="store_true", help=f"{SMALL_RECORDS} records, 2 copies: proves the steps")
    parser.add_argument("--dry-run", action="store_true", help="the same as --device cpu --small")
    parser.add_argument("--workers", type=int, default=None, help="qa build --workers (default: qa's auto)")
    parser.add_argument("--skip-raw", action="store_true", help="leave out the raw encode step")
    args = parser.parse_args()
    if args.dry_run:
        args.device, args.small = "cpu", True
    started = time.perf_counter()
    facts = require_device(args.device)
    quiet_third_party()
    name = "gpu-dry-run" if args.dry_run else ("gpu-small" if args.small else "gpu")
    limit, copies = (SMALL_RECORDS, 2) if args.small else (None, 20)
    work = CACHE / name
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"device": args.device, **facts, "small": args.small, "steps": {}}

    def step(label: str, t0: float) -> None:
        results["steps"][label] = round(time.perf_counter() - t0, 1)
        results["total_seconds"] = round(time.perf_counter() - started, 1)
        write_results(name, results)
        print(f"[{results['total_seconds']:7.1f} s] {label} ({results['steps'][label]} s)", file=sys.stderr)

    t0 = time.perf_counter()
    corpus_1k, corpus_20k = work / "corpus-1k.jsonl.gz", work / "corpus-20k.jsonl.gz"
    n_1k = write_corpus(corpus_1k, 1, limit)
    n_20k = write_corpus(corpus_20k, copies, limit)
    results["corpora"] = {"1k_records": n_1k, "20k_records": n_20k}
    step("corpora", t0)

    cli_precision = resolve_precision(None, "torch", args.device)
    other = "fp32" if cli_precision == "fp16" else "fp16"
    gpu = args.device.startswith("cuda")
    results["builds"] = {}
    for label, corpus, n in (("1k", corpus_1k, n_1k), ("20k", corpus_20k, n_20k)):
        t0 = time.perf_counter()
        build = cli_build([corpus], work / f"index-{label}-{cli_precision}", args.device, args.workers)
        build["precision"] = cli_precision
        build["workers"] = args.workers or auto_workers(n, gpu=gpu)
        results["builds"][label] = build
        step(f"qa build {label} ({cli_precision})", t0)

    t0 = time.perf_counter()
    index_other = work / f"index-1k-{other}"
    report = build_index([corpus_1k], index_other, full=True, backend="torch", device=args.device,
                         precision=other, workers=args.workers)  # fmt: skip
    results["builds"][f"1k_{other}"] = {"precision": other, "passages": report.chunks,
                                        "build_seconds": round(report.seconds, 2), "in_process": True}  # fmt: skip
    step(f"build 1k ({other}, API)", t0)

    t0 = time.perf_counter()
    keys, cli_vectors = passage_vectors(work / f"index-1k-{cli_precision}")
    other_keys, other_vectors = passage_vectors(index_other)
    if keys != other_keys:
        sys.exit("gpu_check: the fp16 and fp32 builds made different passages; they must not")
    cosines = (cli_vectors * other_vectors).sum(axis=1)
    results["cosine"] = {"passages": len(keys), "min": round(float(cosines.min()), 6),
                         "mean": round(float(cosines.mean()), 6), "target": MIN_COSINE}  # fmt: skip
    pmids = {r.pmid for r in shared_records(limit)}
    results["mrr@10"] = {
        cli_precision: mrr(work / f"index-1k-{cli_precision}", args.device, cli_precision, pmids),
        other: mrr(index_other, args.device, other, pmids),
    }
    step("cosine and MRR@10", t0)

    if not args.skip_raw:
        t0 = time.perf_counter()
        embedder = Embedder(backend="torch", device=args.device)
        chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, ChunkSettings())
        with ChunkPool(chunker.spec(), max(1, min(available_cpus() - 1, 8))) as pool:
            texts = [c.embed_text for c in pool.submit(shared_records(limit)).result()]
        results["raw_encode"] = raw_encode(texts, copies, args.device)
        step("raw encode", t0)

    verdict = check(results)
    results["verdict"] = verdict
    path = write_results(name, results)
    print_table(results)
    print(f"\nwrote {path.relative_to(REPO)}")
    if verdict["failed"]:
        sys.exit(f"gpu_check: missed {', '.join(verdict['failed'])}")


def check(results: dict[str, Any]) -> dict[str, Any]:
    """Which targets were met; quality misses fail the check, the throughput target is reported."""
    mrrs = results["mrr@10"]
    fp16, fp32 = mrrs.get("fp16", {}), mrrs.get("fp32", {})
    failed = []
    if results["cosine"]["min"] < MIN_COSINE:
        failed.append(f"cosine >= {MIN_COSINE} (min {results['cosine']['min']})")
    for mode in ("dense", "hybrid"):
        if fp16[mode] < fp32[mode] - MAX_MRR_DROP:
            failed.append(f"{mode} MRR@10 fp16 {fp16[mode]} vs fp32 {fp32[mode]}")
    per_second = results["builds"]["20k"]["passages_per_second"]
    return {"failed": failed, "throughput_target": TARGET_PER_SECOND, "throughput_met": per_second >= TARGET_PER_SECOND}


def print_table(r: dict[str, Any]) -> None:
    b, m = r["builds"], r["mrr@10"]
    rows = [("device", f"{r['device']} {r['gpu'] or ''} (torch {r['torch']}, {r['cpus']} CPUs)".strip())]
    for label in ("1k", "20k"):
        x = b[label]
        rows.append((f"qa build {label} ({x['precision']}, --workers {x['workers']}), end to end",
                     f"{x['wall_seconds']} s, {x['records']:,} records, {x['passages']:,} passages, "
                     f"{x['passages_per_second']}/s; encoding {x['passage_encode_seconds']} s passages + "
                     f"{x['sentence_encode_seconds']} s sentences"))  # fmt: skip
    target = "met" if r["verdict"]["throughput_met"] else "NOT met"
    rows.append(("target: 20k end to end", f">= {TARGET_PER_SECOND:,} passages/s: {target}"))
    c = r["cosine"]
    rows.append(("fp16 vs fp32 passage vectors (1k)", f"cosine min {c['min']}, mean {c['mean']} "
                                                      f"over {c['passages']:,} (target >= {MIN_COSINE})"))  # fmt: skip
    for precision, x in m.items():
        rows.append((f"MRR@10 dense / hybrid, {precision}",
                     f"{x['dense']} / {x['hybrid']} ({x['questions']} questions)"))  # fmt: skip
    if "raw_encode" in r:
        e = r["raw_encode"]
        for precision in ("fp16", "fp32"):
            rows.append((f"raw encode {precision}, 1k / 20k passages",
                         f"{e[precision]['1k_per_second']}/s / {e[precision]['20k_per_second']}/s"))  # fmt: skip
        rows.append(("raw encode fp16 vs fp32 cosine min", f"{e['cosine_min']}"))
    rows.append(("total", f"{r['total_seconds']} s"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:{width}}  {value}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
