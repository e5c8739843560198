"""The options several ``qa`` commands share, declared once with their help text and metavar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

IndexOption = Annotated[
    Path,
    typer.Option("--index", envvar="QA_INDEX", metavar="DIR", show_default=False,
                 help="Index directory (default ./index, or $QA_INDEX)."),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of formatted text.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show library warnings and loading messages.")]
ModelOption = Annotated[
    Optional[str],
    typer.Option("--model", metavar="NAME", show_default=False,
                 help="sentence-transformers model name or local folder (default: all-MiniLM-L6-v2, bundled)."),
]  # fmt: skip
PubmedOption = Annotated[
    Optional[str],
    typer.Option("--pubmed", metavar="QUERY", show_default=False,
                 help="Fetch the records of this PubMed search (E-utilities) and index them."),
]  # fmt: skip
PmidsOption = Annotated[
    Optional[Path],
    typer.Option("--pmids", metavar="FILE", show_default=False,
                 help="Fetch exactly these PMIDs: one per line, or the CSV the PubMed website exports."),
]  # fmt: skip
CitedByOption = Annotated[
    Optional[str],
    typer.Option("--cited-by", metavar="PMID", show_default=False,
                 help="Fetch the articles PubMed lists as citing this PMID (elink) and index them."),
]  # fmt: skip
SimilarOption = Annotated[
    Optional[str],
    typer.Option("--similar", metavar="PMID", show_default=False,
                 help="Fetch PubMed's similar articles of this PMID (elink), most similar first, and index them."),
]  # fmt: skip
MaxOption = Annotated[
    Optional[int],
    typer.Option(
        "--max",
        min=1,
        metavar="N",
        show_default=False,
        help="At most this many records of the search (needed above 10,000).",
    ),
]
ApiKeyOption = Annotated[
    Optional[str],
    typer.Option("--api-key", envvar="NCBI_API_KEY", metavar="KEY", show_default=False,
                 help="NCBI API key ($NCBI_API_KEY): 10 requests/s instead of 3."),
]  # fmt: skip
EmailOption = Annotated[
    Optional[str],
    typer.Option("--email", envvar="NCBI_EMAIL", metavar="ADDRESS", show_default=False,
                 help="Your e-mail, sent to NCBI as they ask ($NCBI_EMAIL)."),
]  # fmt: skip
EutilsOption = Annotated[
    Optional[str],
    typer.Option("--eutils-url", envvar="QA_EUTILS_URL", metavar="URL", show_default=False,
                 help="E-utilities base URL ($QA_EUTILS_URL; default NCBI's .../entrez/eutils/)."),
]  # fmt: skip
AllowPartialOption = Annotated[
    bool,
    typer.Option("--allow-partial",
                 help="Keep what PubMed returned when it leaves PMIDs out (named in warnings) instead of stopping."),
]  # fmt: skip
KOption = Annotated[
    int, typer.Option("-k", "--top", min=1, max=1000, metavar="N", help="Number of passages to show (1-1000).")
]
ModeOption = Annotated[
    str,
    typer.Option("--mode", metavar="MODE",
                 help="Ranking: hybrid (lexical + dense, the default: it measures best), dense (meaning) or lexical."),
]  # fmt: skip
YearFromOption = Annotated[
    Optional[int],
    typer.Option("--year-from", metavar="YEAR", min=0, max=9999, help="Only records published in or after this year."),
]
YearToOption = Annotated[
    Optional[int],
    typer.Option("--year-to", metavar="YEAR", min=0, max=9999, help="Only records published in or before this year."),
]
MeshOption = Annotated[
    Optional[list[str]],
    typer.Option("--mesh", metavar="TERM", show_default=False,
                 help="Only records with this MeSH descriptor (repeat to require several)."),
]  # fmt: skip
JournalOption = Annotated[
    Optional[str],
    typer.Option("--journal", metavar="TEXT", help="Only records whose journal name contains this text."),
]
TypeOption = Annotated[
    Optional[str],
    typer.Option("--type", metavar="TYPES",
                 help="Only these study types, any of them (comma-separated): rct, meta-analysis, systematic-review, "
                      "clinical-trial, guideline, observational, comparative, case-report, review, editorial, "
                      "letter, comment, or a PubMed publication type."),
]  # fmt: skip
StyleOption = Annotated[
    str, typer.Option("--style", metavar="STYLE", help="Reference style: vancouver (NLM), ama or apa.")
]
CiteFormatOption = Annotated[
    str, typer.Option("--format", metavar="FORMAT", help="text (in --style), ris, bibtex, csl-json or nbib.")
]

# -- qa build only -----------------------------------------------------------

SourcesArgument = Annotated[
    Optional[list[str]],
    typer.Argument(metavar="SOURCE", show_default=False,
                   help="PubMed XML (efetch or baseline, .gz ok), MEDLINE/.nbib text, JSONL files, or folders."),
]  # fmt: skip
SampleOption = Annotated[
    bool, typer.Option("--sample", help="Index the bundled sample: 300 PubMedQA abstracts and PMID 25589616.")
]
FullOption = Annotated[
    bool, typer.Option("--full", help="Rebuild from SOURCES alone instead of updating the existing index.")
]
SkipBadOption = Annotated[
    bool, typer.Option("--skip-bad", help="Index the good records and list the bad ones instead of stopping.")
]
ChunkTokensOption = Annotated[
    Optional[int],
    typer.Option("--chunk-tokens", min=16, max=512, metavar="N", show_default=False,
                 help="Largest passage in model tokens, title and section label included "
                      "[default: 128, or the index's]."),
]  # fmt: skip
OverlapOption = Annotated[
    Optional[int],
    typer.Option("--overlap", min=0, max=10, metavar="N", show_default=False,
                 help="Sentences repeated between neighbouring passages [default: 1, or the index's]."),
]  # fmt: skip
BackendOption = Annotated[
    Optional[str],
    typer.Option("--backend", metavar="NAME", show_default=False,
                 help="Encoder: onnx-int8 (int8 ONNX export, ~2-3x faster on CPU) or torch (any --device) "
                      "[default: the index's, else onnx-int8]."),
]  # fmt: skip
IndexTypeOption = Annotated[
    str,
    typer.Option("--index-type", metavar="TYPE",
                 help="Vector index: auto (exact below 100,000 passages, IVF with 8-bit codes from there, "
                      "IVF-PQ with 64-byte codes from 10 million), flat, ivf-sq8 or ivf-pq."),
]  # fmt: skip
DeviceOption = Annotated[
    Optional[str], typer.Option("--device", metavar="DEVICE", help="Torch device for embedding: cpu, cuda, mps.")
]
BatchSizeOption = Annotated[
    Optional[int], typer.Option("--batch-size", min=1, metavar="N", help="Passages per encoder batch.")
]
WorkersOption = Annotated[
    Optional[int],
    typer.Option("--workers", min=1, metavar="N", show_default=False,
                 help="Processes that chunk while the encoder runs; 1 chunks in this process. The index is the "
                      "same either way [default: 1 below 500 records or on 1 CPU, else CPUs - 1, from 2 up to 4 "
                      "(8 when encoding on CUDA)]. With --engine ray: Ray workers, each with its own encoder "
                      "[default: one per CPU of the Ray cluster, at most one per file]."),
]  # fmt: skip
EngineOption = Annotated[
    str,
    typer.Option("--engine", metavar="NAME",
                 help="local (embed in this process) or ray (each source file parsed, chunked and embedded into "
                      "a shard by Ray workers, then one index; needs pip install 'pubmed-qa[ray]')."),
]  # fmt: skip
AddressOption = Annotated[
    Optional[str],
    typer.Option("--address", metavar="ADDR", show_default=False,
                 help="--engine ray: a running Ray cluster (auto, ray://HEAD:10001) [default: start a local Ray]."),
]  # fmt: skip
ShardsOption = Annotated[
    Optional[Path],
    typer.Option("--shards", metavar="DIR", show_default=False,
                 help="--engine ray: folder for the shards, kept for reruns [default: shards/ in the index folder]; "
                      "on a cluster, storage that every node sees."),
]  # fmt: skip

# -- qa ask only -------------------------------------------------------------

VerifyOption = Annotated[
    bool,
    typer.Option("--verify", help="Check every index file against its SHA-256 first (automatic up to 256 MB)."),
]

AllPassagesOption = Annotated[
    bool, typer.Option("--all-passages", help="Allow several passages from one abstract (default: best per PMID).")
]
