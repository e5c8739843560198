"""pubmed-qa: ask questions of a collection of PubMed abstracts and get cited passages back.

The public API, small on purpose::

    from qa import build_index, Retriever, Hit

    build_index(["pubmed.xml.gz"], "index")
    with Retriever("index") as retriever:
        response = retriever.ask("Which IL-6 inhibitors are clinically registered?", k=3)
        print(response.answer.text)
        for hit in response.hits:
            print(hit.pmid, hit.score, hit.url)
"""

from .build import (
    BuildOptions,
    BuildReport,
    PubmedSource,
    build_index,
    index_from_shards,
    remove_records,
    update_from_pubmed,
)
from .conversation import Conversation
from .embed import DEFAULT_MODEL
from .errors import FetchError, IndexStoreError, IngestError, ModelError, QAError
from .ingest import read_source
from .query import Answer, AnswerSentence, Filters, Hit, Response
from .records import Record, Section
from .retrieve import Fusion, Retriever

__version__ = "0.1.0"

__all__ = [
    "build_index",
    "index_from_shards",
    "BuildOptions",
    "BuildReport",
    "remove_records",
    "update_from_pubmed",
    "PubmedSource",
    "Retriever",
    "Hit",
    "Response",
    "Answer",
    "AnswerSentence",
    "Filters",
    "Fusion",
    "Conversation",
    "Record",
    "Section",
    "read_source",
    "QAError",
    "IngestError",
    "IndexStoreError",
    "ModelError",
    "FetchError",
    "DEFAULT_MODEL",
    "__version__",
]
