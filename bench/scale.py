"""The whole stack at scale (issue 21): build, ask with filters, update 1%, remove 1,000, verify, serve at 8.

    python bench/scale.py                      # about 1M passages (154,000 records); prints a table, writes
                                               # bench/results/scale-1000000.json (about 25 minutes here)
    python bench/scale.py --passages 100000    # the same at about 100k passages (a few minutes)
    python bench/scale.py --build-only         # only the build; a later run reuses it (its figures are kept)

The corpus is bench/corpus1m.py's: records recombined from the shared abstracts' real sentences, titles,
years and MeSH headings (journals synthetic; see there). It is written once to bench/.cache.

**One part is a stand-in: the build's encoder.** Encoding a million passages and their two million
sentences with MiniLM takes about 3.5 hours on these 2 cores (bench/speed.py's rates), so the build here
gives each text the vector of a real shared passage, chosen by the text's hash, plus Gaussian noise
(sd 0.03 per dimension, then normalised; ``StandInVectors``). Everything else is the real build: parsing,
chunking, sentence splitting, SQLite, FTS5, FAISS (the index type ``qa build`` chooses) and the manifest.
The vectors cluster like real ones, so FAISS's lists fill as they would; what a hit is about is not
measured here (bench/quality.py measures that on real vectors). The index keeps the real int8 encoder, so
questions are encoded by MiniLM at ask time, as a user's would be: the ask, serve and verify figures are
the real stack's. What a real build would take is computed from bench/speed.py's measured full-build rate.

Peak RSS is the largest sum, sampled every 0.2 s, of the resident memory of the build's process and its
chunk workers.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import random
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
from common import CACHE, REPO, SHARED_QUERIES, corpus_index, passage_vectors, write_results
from corpus1m import write_corpus
from serve import load, start_server

sys.path.insert(0, str(REPO))
from qa import Filters, Retriever, build_index, remove_records  # noqa: E402
from qa.embed import Embedder, quiet_third_party  # noqa: E402
from qa.ingest import read_source  # noqa: E402
from qa.records import Record, record_to_dict  # noqa: E402
from qa.store import IndexStore  # noqa: E402
from qa.store.verify import verify_index  # noqa: E402

NOISE = 0.03
QUESTIONS = 40  # shared titles per mode and filter (--questions)
MODES = ("hybrid", "dense", "lexical")
# Encoding rate of a real build, passages and their sentences, per 2 cores (bench/speed.py, a quiet machine)
REAL_BUILD_PASSAGES_PER_S = 160.7


class StandInVectors:
    """The build's encoder, replaced: each text gets a real shared passage's vector (by the text's hash) plus
    seeded noise. Same text, same vector, so an incremental build reuses what it should."""

    def __init__(self, centers: np.ndarray) -> None:
        self.centers = centers

    def __call__(self, texts, *, batch_size=None, exact=True, on_encoded=None) -> np.ndarray:  # noqa: ANN001
        out = np.empty((len(texts), self.centers.shape[1]), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            rng = np.random.default_rng(seed)
            row = self.centers[seed % len(self.centers)] + rng.normal(0, NOISE, self.centers.shape[1])
            out[i] = row / np.linalg.norm(row)
        if on_encoded is not None:
            on_encoded(range(len(texts)))
        return out


class PeakRss:
    """The largest resident memory of this process and its children together, sampled in a thread."""

    def __init__(self) -> None:
        import psutil

        self.process, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            total = 0
            for p in [self.process, *self.process.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def corpus(passages: int) -> tuple[int, list[Path]]:
    out = CACHE / f"corpus-{passages}"
    stamp = out / "stamp.json"
    if stamp.is_file():
        data = json.loads(stamp.read_text())
        return data["records"], [out / name for name in data["files"]]
    n, files = write_corpus(out, passages)
    stamp.write_text(json.dumps({"records": n, "files": [f.name for f in files]}))
    return n, files


def build(files: list[Path], index: Path, embedder: Embedder, workers: int) -> dict:
    started = time.perf_counter()
    with PeakRss() as rss:
        report = build_index(files, index, full=True, embedder=embedder, workers=workers)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), "peak_rss_gb": round(rss.peak / 1e9, 2), "records": report.added,
            "passages": report.chunks_embedded + report.chunks_reused,
            "real_encoding_s_computed": round((report.chunks_embedded + report.chunks_reused)
                                              / REAL_BUILD_PASSAGES_PER_S, 0)}  # fmt: skip


def filters() -> dict[str, Filters | None]:
    """No filter, a year, a MeSH heading, a non-ASCII journal (a substring with an accent)."""
    return {"none": None, "year >= 2010": Filters(year_from=2010), "MeSH Aged": Filters(mesh=("Aged",)),
            "journal 'médica'": Filters(journal="médica")}  # fmt: skip


def asks(index: Path, n: int) -> list[dict]:
    with open(SHARED_QUERIES, encoding="utf-8") as fh:
        questions = [json.loads(line)["text"] for line in fh][:n]
    rows = []
    with Retriever(index) as retriever:
        retriever.warm_up()
        for name, chosen in filters().items():
            for mode in MODES:
                times, found = [], 0
                for q in questions:
                    t0 = time.perf_counter()
                    response = retriever.ask(q, k=5, mode=mode, filters=chosen, relevance_floor=None)
                    times.append((time.perf_counter() - t0) * 1000)
                    found += bool(response.hits)
                rows.append({"filter": name, "mode": mode, "p50_ms": round(float(np.percentile(times, 50)), 1),
                             "p99_ms": round(float(np.percentile(times, 99)), 1), "with_hits": found,
                             "questions": len(questions)})  # fmt: skip
                print(f"  ask {mode:<8} {name:<18} p50 {rows[-1]['p50_ms']:>7} ms  p99 {rows[-1]['p99_ms']:>7} ms",
                      file=sys.stderr)  # fmt: skip
    return rows


def all_words(index: Path, n: int) -> dict:
    """Hybrid asks with every question word searched (``COMMON_SHARE`` off) against the default, on the same
    questions: what leaving the common words out of BM25 saves, and how often it changes what is shown."""
    with open(SHARED_QUERIES, encoding="utf-8") as fh:
        questions = [json.loads(line)["text"] for line in fh][:n]
    runs: dict[str, tuple[list[float], list[tuple[list[str], str]]]] = {}
    with Retriever(index) as retriever:
        retriever.warm_up()
        default = retriever.snapshot.lexical.common_share
        for name, share in (("all words", 1.0), ("default", default)):
            retriever.snapshot.lexical.common_share = share
            times, shown = [], []
            for q in questions:
                t0 = time.perf_counter()
                response = retriever.ask(q, k=5)
                times.append((time.perf_counter() - t0) * 1000)
                label = (response.hits[0].relevance_label or "") if response.hits else "refused"
                shown.append(([h.pmid for h in response.hits], label))
            runs[name] = (times, shown)
    full, pruned = runs["all words"][1], runs["default"][1]
    return {"questions": len(questions), "common_share": default,
            "p50_ms_all_words": round(float(np.percentile(runs["all words"][0], 50)), 1),
            "p50_ms_default": round(float(np.percentile(runs["default"][0], 50)), 1),
            "same_first_hit": sum(a[0][:1] == b[0][:1] for a, b in zip(full, pruned)),
            "same_decision": sum(a[1] == b[1] for a, b in zip(full, pruned)),
            "top5_overlap": round(float(np.mean([len(set(a[0]) & set(b[0])) / len(a[0])
                                                 for a, b in zip(full, pruned) if a[0]])), 3)}  # fmt: skip


def changed_records(files: list[Path], share: float, out: Path) -> int:
    """Write ``share`` of the records, each with one sentence added to its abstract, as one update file."""
    rng = random.Random(1)
    n = 0
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        for record in (r for f in files for r in read_source(f) if isinstance(r, Record)):
            if rng.random() < share:
                data = record_to_dict(record)
                added = " This record was updated for the bench."
                data["abstract"] = (data.get("abstract") or "") + added
                if data["sections"]:
                    data["sections"][-1]["text"] += added
                fh.write(json.dumps(data) + "\n")
                n += 1
    return n


def current_format(index: Path) -> bool:
    """Whether ``index`` holds a snapshot this version reads (an older format is built again)."""
    from qa.errors import QAError

    try:
        return IndexStore(index).exists() and IndexStore(index).manifest() is not None
    except QAError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000, help="about how many passages (default 1M)")
    parser.add_argument("--workers", type=int, default=2, help="chunk workers for the build (default 2)")
    parser.add_argument("--requests", type=int, default=80, help="serve: requests per concurrency level")
    parser.add_argument("--questions", type=int, default=QUESTIONS, help=f"per mode and filter (default {QUESTIONS})")
    parser.add_argument("--build-only", action="store_true", help="build (or rebuild) the index and stop")
    args = parser.parse_args()
    quiet_third_party()
    n_records, files = corpus(args.passages)
    index = CACHE / f"scale-{args.passages}"
    embedder = Embedder()
    embedder.runner.encode = StandInVectors(passage_vectors(corpus_index()).astype(np.float32))  # type: ignore[method-assign]
    result: dict = {"records": n_records, "stand_in_encoder": f"real passage vectors + N(0, {NOISE}) noise"}
    built = CACHE / f"scale-{args.passages}.build.json"  # written once the build is complete
    if args.build_only or not built.is_file() or not current_format(index):
        built.unlink(missing_ok=True)
        print(f"building {n_records:,} records ...", file=sys.stderr)
        built.write_text(json.dumps(build(files, index, embedder, args.workers)))
    result["build"] = json.loads(built.read_text())
    print(f"  build: {result['build']}", file=sys.stderr)
    if args.build_only:
        return
    result["asks"] = asks(index, args.questions)
    result["all_words"] = all_words(index, args.questions)
    print(f"  all words searched: {result['all_words']}", file=sys.stderr)
    work = CACHE / f"scale-{args.passages}-work"  # a copy: the built index stays as built, for the next run
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(index, work, symlinks=True)
    try:
        rest(result, files, work, embedder, args.requests)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["sqlite_bytes_per_passage"] = sqlite_bytes(index, result["build"]["passages"])
    print_table(result)
    print(f"wrote {write_results(f'scale-{args.passages}', result)}")


def rest(result: dict, files: list[Path], index: Path, embedder: Embedder, requests: int) -> None:
    """Update 1%, remove 1,000, verify and serve, on ``index`` (a copy of the built one)."""
    update = index.parent / f"{index.name}-update.jsonl.gz"
    changed = changed_records(files, 0.01, update)
    t0 = time.perf_counter()
    report = build_index([update], index, embedder=embedder)
    seconds = round(time.perf_counter() - t0, 1)
    result["update_1pct"] = {"records": changed, "updated": report.updated, "seconds": seconds,
                             "share_of_full_build": round(seconds / result["build"]["seconds"], 3)}  # fmt: skip
    print(f"  update: {result['update_1pct']}", file=sys.stderr)
    t0 = time.perf_counter()
    gone = remove_records([str(50_000_000 + i) for i in range(0, 2000, 2)], index, embedder=embedder)
    result["remove_1000"] = {"removed": gone.deleted, "seconds": round(time.perf_counter() - t0, 1)}
    t0 = time.perf_counter()
    verified = verify_index(index)
    result["verify"] = {"ok": verified.ok, "seconds": round(time.perf_counter() - t0, 1)}
    print(f"  remove: {result['remove_1000']}, verify: {result['verify']}", file=sys.stderr)
    with open(SHARED_QUERIES, encoding="utf-8") as fh:
        questions = [json.loads(line)["text"] for line in fh]
    process, url, startup = start_server(index)
    try:
        load(url, questions[500:], 2, 10)
        result["serve"] = [load(url, questions, c, requests) for c in (1, 8)]
    finally:
        process.terminate()
        process.wait(30)
        update.unlink(missing_ok=True)
    result["serve_startup_s"] = round(startup, 2)


def sqlite_bytes(index: Path, passages: int) -> int:
    store = IndexStore(index)
    return round((store.current_dir() / "passages.sqlite").stat().st_size / max(1, passages))


def print_table(r: dict) -> None:
    b = r["build"]
    lines = [
        ("records / passages", f"{r['records']:,} / {b['passages']:,}"),
        ("full build (stand-in encoder), wall", f"{b['seconds']:,} s"),
        ("a real build at 160.7 passages/s (computed)", f"{b['real_encoding_s_computed']:,.0f} s"),
        ("peak build RSS (process + chunk workers)", f"{b['peak_rss_gb']} GB"),
        ("SQLite bytes per passage", f"{r['sqlite_bytes_per_passage']:,}"),
    ]
    for row in r["asks"]:
        lines.append((f"warm ask {row['mode']}, filter {row['filter']}", f"{row['p50_ms']} / {row['p99_ms']} ms"
                      f" (hits for {row['with_hits']}/{row['questions']})"))  # fmt: skip
    w = r["all_words"]
    lines += [
        (f"warm ask hybrid, every word searched (not only those in <= {w['common_share']:.0%})",
         f"{w['p50_ms_all_words']} ms, against {w['p50_ms_default']} ms"),
        ("  ... the same first hit / decision as the default", f"{w['same_first_hit']} / {w['same_decision']} of "
         f"{w['questions']}, top-5 overlap {w['top5_overlap']}"),
    ]
    u = r["update_1pct"]
    lines += [
        ("update of 1% of the records", f"{u['seconds']} s ({100 * u['share_of_full_build']:.1f}% of the build)"),
        ("qa remove of 1,000 PMIDs", f"{r['remove_1000']['seconds']} s"),
        ("qa verify", f"{r['verify']['seconds']} s, ok={r['verify']['ok']}"),
        ("qa serve: start to first /health", f"{r['serve_startup_s']} s"),
    ]
    for s in r["serve"]:
        lines.append((f"qa serve, {s['clients']} clients: req/s, p50 / p99",
                      f"{s['throughput_rps']}, {s['p50_ms']} / {s['p99_ms']} ms, {s['errors']} errors"))  # fmt: skip
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
