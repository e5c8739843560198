"""HTTP load benchmark: ``qa serve`` on the shared index, 1, 4 and 8 concurrent clients on 127.0.0.1.

    python bench/serve.py                 # prints a table, writes bench/results/serve.json (about two minutes)
    python bench/serve.py --requests 200  # more requests per level
    python bench/serve.py --no-second-opinion  # without e5: bench/results/serve-no-second-opinion.json

The server runs as its own process (``qa serve --port 0``), as a user would start it; the clients
are threads of this process, each with its own keep-alive connection, asking the shared PubMedQA
questions in turn with ``POST /ask`` (k=5, hybrid: answer block and passages). Also measured:
seconds from starting ``qa serve`` to its first ``/health`` answer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from common import REPO, SHARED_QUERIES, corpus_index, write_results

LEVELS = (1, 4, 8)


def start_server(index, *options: str) -> tuple[subprocess.Popen, str, float]:
    t0 = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--index", str(index), "--port", "0", *options],
        stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    line = process.stderr.readline()
    if " at http://" not in line:
        process.kill()
        sys.exit(f"qa serve did not start: {line.strip()} {process.stderr.read()[:500]}")
    url = line.split(" at ")[1].split()[0].rstrip("/")
    while True:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return process, url, time.perf_counter() - t0
        except httpx.TransportError:
            time.sleep(0.01)


def load(url: str, questions: list[str], clients: int, requests: int) -> dict:
    """``requests`` asks spread over ``clients`` threads; latency per request, throughput over the wall time."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for i in iter(lambda: next(counter, None), None):
                body = {"question": questions[i % len(questions)], "k": 5}
                t0 = time.perf_counter()
                reply = http.post("/ask", json=body)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    if reply.status_code != 200:
                        errors.append(f"{reply.status_code} {reply.text[:100]}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "error_examples": errors[:3],
        "throughput_rps": round(len(latencies) / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120, help="requests per concurrency level (default 120)")
    parser.add_argument("--no-second-opinion", action="store_true", help="serve with --no-second-opinion")
    args = parser.parse_args()
    index = corpus_index()
    with open(SHARED_QUERIES, encoding="utf-8") as fh:
        questions = [json.loads(line)["text"] for line in fh]
    most = (len(questions) - 20) // len(LEVELS)  # the last 20 warm the server up
    if not 1 <= args.requests <= most:
        sys.exit(f"serve.py: --requests must be 1-{most}: each level asks its own questions")
    options = ("--no-second-opinion",) if args.no_second_opinion else ()
    process, url, startup = start_server(index, *options)
    try:
        load(url, questions[-20:], 2, 20)  # warm-up: first requests pay for lazy imports and caches
        # Each level asks questions the server has not seen: none is answered from a cache the last level filled.
        rows = [load(url, questions[i * args.requests : (i + 1) * args.requests], c, args.requests)
                for i, c in enumerate(LEVELS)]  # fmt: skip
    finally:
        process.terminate()
        process.wait(30)
    single = rows[0]["p50_ms"]
    for row in rows:
        row["p50_vs_single"] = round(row["p50_ms"] / single, 2)
    result = {
        "index": "shared 1,001 records (5,673 passages), onnx-int8",
        "startup_to_health_s": round(startup, 2),
        "levels": rows,
        "targets": {"errors": 0, "p50_at_8_vs_single_max": 8.0},
        "machine": "2 shared cores; server and clients on the same machine",
        "second_opinion": not args.no_second_opinion,
    }
    print(f"qa serve: first /health answer {startup:.2f} s after start")
    print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'p50 x1':>7}")
    for r in rows:
        print(
            f"{r['clients']:>7} {r['requests']:>8} {r['errors']:>6} {r['throughput_rps']:>7} "
            f"{r['p50_ms']:>8} {r['p99_ms']:>8} {r['p50_vs_single']:>7}"
        )
    print(f"wrote {write_results('serve-no-second-opinion' if args.no_second_opinion else 'serve', result)}")


if __name__ == "__main__":
    main()
