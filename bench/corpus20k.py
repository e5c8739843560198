"""The 20k corpus of issue 13: the 1,001 shared records repeated 20 times, every copy but the first with new PMIDs.

    python bench/corpus20k.py [--copies 20] [--records N] [--out FILE]   # default bench/.cache/corpus-20k.jsonl.gz

Copy 0 keeps the real PMIDs, so the shared questions still point at their records; copy k adds k * 10^8 to
each PMID (real PMIDs have at most 8 digits, so no two collide). The texts repeat, but a build re-embeds
every copy: vectors are only reused for the same PMID. The file is gzipped JSONL, written the same way every
time (no timestamp in the gzip header).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import sys
from pathlib import Path

from common import CACHE, CORPUS, REPO

sys.path.insert(0, str(REPO))

from qa.ingest import read_source  # noqa: E402
from qa.records import Record, record_to_dict  # noqa: E402

PMID_STEP = 10**8


def shared_records(limit: int | None = None) -> list[Record]:
    """The shared records (PubMedQA's 1,000 and the seed), in file order; the first ``limit`` of them."""
    for f in CORPUS:
        if not f.is_file():
            sys.exit(f"missing {f}: clone next to ../shared or set QA_SHARED_DATA")
    records = [r for f in CORPUS for r in read_source(f) if isinstance(r, Record)]
    return records[:limit] if limit is not None else records


def write_corpus(out: Path, copies: int = 20, records: int | None = None) -> int:
    """Write ``copies`` copies of the shared records (the first ``records`` of them) to ``out``; returns how many."""
    base = shared_records(records)
    if any(int(r.pmid) >= PMID_STEP for r in base):
        raise ValueError("a shared PMID has more than 8 digits; the copies' PMIDs would collide")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        for copy in range(copies):
            for record in base:
                renamed = dataclasses.replace(record, pmid=str(int(record.pmid) + copy * PMID_STEP))
                fh.write((json.dumps(record_to_dict(renamed)) + "\n").encode())
    partial.replace(out)
    return copies * len(base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--records", type=int, default=None, help="only the first N shared records (default all)")
    parser.add_argument("--out", type=Path, default=CACHE / "corpus-20k.jsonl.gz")
    args = parser.parse_args()
    n = write_corpus(args.out, args.copies, args.records)
    print(f"wrote {n:,} records to {args.out}")


if __name__ == "__main__":
    main()
