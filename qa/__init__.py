"""pubmed-qa: ask questions of a collection of PubMed abstracts and get cited passages back.

The public API, small on purpose::

    from qa import build_index, Retriever, Hit

    build_index(["pubmed.xml.gz"], "index")
    with Retriever("index") as retriever:
        response = retriever.ask("Which IL-6 inhibitors are clinically registered?", k=3)
        print(response.answer.text)
        for hit in response.hits:
            print(hit.pmid, hit.score, hit.url)

The package follows the data's path, one subpackage per stage: ``ingest`` (files, E-utilities) ->
``embed`` (chunking, encoders) -> ``store`` (the index on disk: the only FAISS and SQL) -> ``build``
(local and sharded builds) -> ``ask`` (retrieval, answers, conversations) -> ``cli`` and ``serve``.
``records`` and ``query`` hold the types every stage shares. Names below are imported on first use,
so ``import qa`` stays cheap and a shard worker loads only what it runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import FetchError, IndexStoreError, IngestError, ModelError, QAError

if TYPE_CHECKING:
    from .ask.conversation import Conversation
    from .ask.retrieve import Fusion, Retriever
    from .build.options import BuildOptions, BuildReport
    from .build.pipeline import build_index, remove_records
    from .build.pubmed import PubmedSource, update_from_pubmed
    from .build.shards.assemble import index_from_shards
    from .embed.models import DEFAULT_MODEL
    from .ingest.files import read_source
    from .query import Answer, AnswerSentence, Filters, Hit, Response
    from .records import Record, Section

__version__ = "0.1.0"

_EXPORTS = {
    "build_index": "build.pipeline",
    "remove_records": "build.pipeline",
    "index_from_shards": "build.shards.assemble",
    "BuildOptions": "build.options",
    "BuildReport": "build.options",
    "update_from_pubmed": "build.pubmed",
    "PubmedSource": "build.pubmed",
    "Retriever": "ask.retrieve",
    "Fusion": "ask.retrieve",
    "Conversation": "ask.conversation",
    "Hit": "query",
    "Response": "query",
    "Answer": "query",
    "AnswerSentence": "query",
    "Filters": "query",
    "Record": "records",
    "Section": "records",
    "read_source": "ingest.files",
    "DEFAULT_MODEL": "embed.models",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = [
    "build_index",
    "remove_records",
    "index_from_shards",
    "BuildOptions",
    "BuildReport",
    "update_from_pubmed",
    "PubmedSource",
    "Retriever",
    "Fusion",
    "Conversation",
    "Hit",
    "Response",
    "Answer",
    "AnswerSentence",
    "Filters",
    "Record",
    "Section",
    "read_source",
    "DEFAULT_MODEL",
    "QAError",
    "IngestError",
    "IndexStoreError",
    "ModelError",
    "FetchError",
    "__version__",
]
