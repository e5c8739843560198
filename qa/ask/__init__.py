"""Ask: from a question to cited passages, an answer block and a conversation.

- ``retrieve``: ``Retriever`` -- dense, lexical and hybrid search with filters, over one snapshot
- ``answer``: the answer block -- the sentences that state the finding, each cited by PMID
- ``conversation``: ``Conversation`` -- follow-ups, topics and chat commands
- ``relevance``, ``verdict``, ``population``: does a record answer the question, its bottom line, whom it studies
- ``comparison``: the bottom line of "Is A better than B?" -- which option a conclusion favours
- ``evaluate``: MRR, nDCG and recall against BEIR-format judgements (``qa eval``)
"""

from .conversation import Conversation
from .evaluate import evaluate, load_qrels, load_queries
from .retrieve import NOTHING_RELEVANT, Fusion, Retriever, fuse

__all__ = ["Retriever", "Fusion", "fuse", "Conversation", "NOTHING_RELEVANT", "evaluate", "load_qrels", "load_queries"]
