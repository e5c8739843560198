"""pubmed-qa: ask questions of a collection of PubMed abstracts and get cited passages back.

The public API, small on purpose::

    from qa import build_index, Retriever, Hit

    build_index(["pubmed.xml.gz"], "index")
    with Retriever("index") as retriever:
        for hit in retriever.search("Which IL-6 inhibitors are clinically registered?", k=3):
            print(hit.pmid, hit.score, hit.url)
"""

from .build import BuildReport, build_index
from .embed import DEFAULT_MODEL
from .errors import IndexStoreError, IngestError, ModelError, QAError
from .ingest import Record, Section, read_source
from .retrieve import Hit, Retriever

__version__ = "0.1.0"

__all__ = [
    "build_index",
    "BuildReport",
    "Retriever",
    "Hit",
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
