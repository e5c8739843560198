"""A PubMed-like corpus of any size (default about 1M passages) recombined from the shared abstracts' real
sentences, for the whole-stack bench of issue 21.

    python bench/corpus1m.py                        # about 154,000 records, 1M passages, in 16 files
    python bench/corpus1m.py --passages 100000 --out bench/.cache/corpus-100k

What is real and what is not:
- **Abstracts:** each record takes the section layout of a random shared record (its labels, and how many
  sentences each section holds) and fills every section with sentences drawn from that label's sentences
  across all shared records. A METHODS sentence stays a methods sentence, so section lengths, vocabulary and
  BM25 statistics behave like the shared set's, and so do numbers and units, which are kept as written.
- **Titles:** the 1,000 shared questions (PubMedQA's questions are the articles' own titles).
- **Years and MeSH headings:** drawn from the shared records' distributions, and so is the number of
  headings a record has.
- **Journals: not real as a distribution.** The shared PubMedQA records carry no journal, and all the
  shared samples name 13 journals. Records get one of those 13, or one of 6 journal names with accents typed
  here (so that a non-ASCII journal filter has something to find), with Zipf weights (rank^-1).
- **PMIDs** are 50,000,000 plus the record's number, beyond every shared one; each file holds a
  baseline-sized run of them.

The same seed writes the same bytes (gzip without a timestamp). A file is written under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
from collections import Counter
from pathlib import Path

from common import CACHE, CORPUS, REPO, SHARED, SHARED_QUERIES

sys.path.insert(0, str(REPO))
from qa.embed.chunk import split_sentences  # noqa: E402
from qa.ingest import read_source  # noqa: E402
from qa.records import Record, Section, record_to_dict  # noqa: E402

# Measured by chunking 1,000 generated records with the build's own chunker: 6.51 passages each, against the
# shared records' 5.67 at the same abstract length (1,593 against 1,611 characters). The difference is the
# title, which every passage carries and the shared records lack.
PASSAGES_PER_RECORD = 6.5
RECORDS_PER_FILE = 10_000
FIRST_PMID = 50_000_000
NON_ASCII_JOURNALS = (  # as their publishers print them (MEDLINE writes most of them in ASCII), typed here
    "Médecine sciences",
    "Revista médica de Chile",
    "Läkartidningen",
    "Ugeskrift for læger",
    "Zeitschrift für Gastroenterologie",
    "Anales de pediatría",
)


class Pools:
    """What the generator draws from: the shared records' layouts, sentences by label, years and headings."""

    def __init__(self) -> None:
        records = [r for f in CORPUS for r in read_source(f) if isinstance(r, Record)]
        self.layouts: list[tuple[tuple[str | None, int], ...]] = []
        self.sentences: dict[str | None, list[str]] = {}
        for record in records:
            layout = []
            for section in record.sections:
                pieces = [section.text[s:e] for s, e in split_sentences(section.text)]
                self.sentences.setdefault(section.label, []).extend(pieces)
                layout.append((section.label, len(pieces)))
            self.layouts.append(tuple(layout))
        self.years = [r.year for r in records if r.year]
        self.heading_counts = [len(r.mesh) for r in records]
        headings = Counter(h for r in records for h in r.mesh)
        self.headings, self.heading_weights = list(headings), list(headings.values())
        with open(SHARED_QUERIES, encoding="utf-8") as fh:
            self.titles = [json.loads(line)["text"] for line in fh if line.strip()]
        journals = Counter(r.journal for f in sorted((SHARED / "samples").rglob("*")) if f.is_file()
                           for r in _records(f) if r.journal)  # fmt: skip
        self.journals = [j for j, _ in journals.most_common()] + list(NON_ASCII_JOURNALS)
        self.journal_weights = [1 / (rank + 1) for rank in range(len(self.journals))]


def _records(path: Path) -> list[Record]:
    try:
        return [r for r in read_source(path) if isinstance(r, Record)]
    except Exception:  # noqa: BLE001 -- the samples folder also holds licenses and esearch answers
        return []


def make_record(number: int, pools: Pools, rng: random.Random) -> Record:
    """Record ``number``: a real layout filled with real sentences of the same labels."""
    sections = []
    for label, n in rng.choice(pools.layouts):
        pool = pools.sentences[label]
        sections.append(Section(label, " ".join(rng.choice(pool) for _ in range(max(1, n)))))
    k = rng.choice(pools.heading_counts)
    mesh = tuple(dict.fromkeys(rng.choices(pools.headings, pools.heading_weights, k=k))) if k else ()
    return Record(str(FIRST_PMID + number), tuple(sections), title=rng.choice(pools.titles),
                  journal=rng.choices(pools.journals, pools.journal_weights)[0], year=rng.choice(pools.years),
                  mesh=mesh)  # fmt: skip


def write_corpus(out: Path, passages: int, seed: int = 0) -> tuple[int, list[Path]]:
    """Write enough records for about ``passages`` passages into ``out``; returns the count and the files."""
    pools = Pools()
    total = math.ceil(passages / PASSAGES_PER_RECORD)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for start in range(0, total, RECORDS_PER_FILE):
        rng = random.Random(f"{seed}-{start}")  # each file on its own: the same bytes whatever the count
        path = out / f"part-{start // RECORDS_PER_FILE:04d}.jsonl.gz"
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
            for number in range(start, min(total, start + RECORDS_PER_FILE)):
                fh.write((json.dumps(record_to_dict(make_record(number, pools, rng))) + "\n").encode())
        partial.replace(path)
        files.append(path)
        print(f"  {path.name}: records {start:,}-{min(total, start + RECORDS_PER_FILE) - 1:,}", file=sys.stderr)
    return total, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000, help="about how many passages (default 1M)")
    parser.add_argument("--out", type=Path, default=CACHE / "corpus-1m", help="folder for the .jsonl.gz files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, files = write_corpus(args.out, args.passages, args.seed)
    size = sum(f.stat().st_size for f in files)
    print(f"wrote {n:,} records (about {args.passages:,} passages) in {len(files)} files, {size / 1e6:.0f} MB, "
          f"to {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
