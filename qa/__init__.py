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

from .answer import Answer, AnswerSentence, Response
from .build import BuildReport, build_index
from .conversation import Conversation
from .embed import DEFAULT_MODEL
from .errors import IndexStoreError, IngestError, ModelError, QAError
from .ingest import Record, Section, read_source
from .retrieve import Fusion, Hit, Retriever
from .store import Filters

__version__ = "0.1.0"

__all__ = [
    "build_index",
    "BuildReport",
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
    "DEFAULT_MODEL",
    "__version__",
]
