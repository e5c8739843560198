"""Conversation: follow-up questions understood in the context of the previous turn (``qa chat``).

A follow-up such as "what were the side effects?" carries too little to search
on its own, so the previous question of the same topic is searched with it.
Which questions are follow-ups is decided by what retrieval finds, not by cue
words; ``new_topic()`` forgets the context, and every response says which
query was actually searched.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import QAError
from ..query import DEFAULT_MODE, MAX_CHAT_K, Filters, Mode, Response, check_mode, check_question
from ..records import normalize_pmid
from ..store.lexical import STOPWORDS
from .retrieve import Retriever, clipped

CHAT_HELP = """Type a question and press Enter. A follow-up ("and its side effects?") is searched
together with the previous question; /new starts a fresh topic. Commands:
  /new                 start a new topic
  /k N                 show N passages per answer (now {k})
  /mode M              hybrid, dense or lexical (now {mode})
  /filter ...          e.g. /filter year>=2010 year<=2015 mesh="Breast Neoplasms" journal=lancet type=rct
  /filter off          remove filters (now: {filters})
  /all                 toggle several passages per abstract (now {all})
  /reload              switch to a newer build of the index
  /help                this text
  /quit                leave (or Ctrl-D)"""

_OPENERS = re.compile(
    r"^(and|but|also|so|then|what about|how about|what of|and what|and how|same for|what else|any|why|how come)\b",
    re.IGNORECASE,
)
_REFERRING = frozenset("it its it's they them their theirs this that these those such he she his her there".split())
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9+\-]*")


def sounds_like_follow_up(question: str) -> bool:
    """Whether a question's wording leans on an earlier one ("and", "what about", "it", or tiny).

    Whether a later question is a follow-up is decided by retrieval (``Conversation.query_for``);
    wording only tips the balance for a question too vague to find anything on its own, and tells a
    user that a first question has nothing to follow up.
    """
    words = [w.lower() for w in _WORD.findall(question)]
    if not words:
        return False
    content = [w for w in words if w not in STOPWORDS and w not in _REFERRING]
    if _OPENERS.match(question.strip()):
        return True
    if any(w in _REFERRING for w in words) and len(content) <= 4:
        return True
    if re.match(r"^(?:the|those|these)\b", question.strip(), re.IGNORECASE) and len(content) <= 4:
        return True  # a definite noun phrase that points back: "the side effects?"
    return len(content) <= 2  # "side effects?", "in children?"


def parse_filters(text: str, current: Filters | None = None) -> Filters:
    """Parse ``year>=2010 year<=2015 mesh="Breast Neoplasms" journal=lancet type=rct,meta-analysis`` (or
    ``off``) into Filters."""
    text = text.strip()
    if text in ("off", "none", "clear"):
        return Filters()
    filters = current or Filters()
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise QAError(f"cannot read filter {text!r} ({exc})") from None
    for token in tokens:
        m = re.fullmatch(r"(year|mesh|journal|type)\s*(>=|<=|=)\s*(.+)", token, re.IGNORECASE)
        if not m:
            raise QAError(f"cannot read filter {token!r}; use year>=Y, year<=Y, year=Y, mesh=TERM, journal=TEXT, "
                          "type=TYPES or off")  # fmt: skip
        key, op, value = m.group(1).lower(), m.group(2), m.group(3).strip()
        if key == "year":
            if not (value.isascii() and value.isdigit() and len(value) <= 4):
                raise QAError(f"year must be a number, not {value!r}")
            year = int(value)
            if op in (">=", "="):
                filters = replace(filters, year_from=year)
            if op in ("<=", "="):
                filters = replace(filters, year_to=year)
        elif op != "=":
            raise QAError(f"{key} takes '=', not {op!r}")
        elif key == "mesh":
            filters = replace(filters, mesh=(*filters.mesh, value))
        elif key == "type":
            filters = replace(filters, types=(value,))
        else:
            filters = replace(filters, journal=value)
    return filters


NO_EARLIER_QUESTION = "This reads like a follow-up, but there is no earlier question: searched it on its own."
# Shown when a question after a topic is asked on its own: a reader who meant a follow-up sees that it was not
# read as one, and can name the topic's subject in it.
NEW_QUESTION = 'Read as a new question, not as a follow-up of "{topic}".'

# How much closer a question must be to the records it finds alone than to the topic's records to
# start a new topic (cosines; chosen on the dev conversations of bench/answers: follow-ups <= 0.13,
# topic switches >= 0.57 there).
VAGUE_COSINE = 0.40  # a question this far from its best passage cannot stand alone ("and their safety?")
NEW_TOPIC_GAP = 0.30
# ... or this much, for a question whose wording does not lean on the topic (``sounds_like_follow_up``) and that
# finds on its own a record judged to answer it: stop 34, on the dev switches of bench/answers/switches.jsonl,
# two that share the topic's words ("men" and "deaths", "30-day mortality") find their own records 0.25-0.26
# closer than the topic's, while no dev follow-up without a cue word finds another record more than 0.05 closer
# (those with one, up to 0.13). Such a question names what the topic's records lack and another record answers.
STANDALONE_GAP = 0.15
# A vague question follows up if it is at least this close to the topic's records or its wording
# points back ("and their safety?"); otherwise ("best pizza in Rome") it is asked on its own
# (dev follow-ups: >= 0.36).
TOPIC_FLOOR = 0.25
# A complete question names its own subject (``Conversation._names_a_new_subject``) in one of two ways:
# - the record it finds alone holds NEW_SUBJECT_OWN of its content words (idf-weighted) and NEW_SUBJECT_MARGIN
#   more than the topic's records: "Does vitamin D supplementation prevent fractures?" after a statin question;
# - or the topic's records hold under NEW_SUBJECT_TOPIC of them and subject words that other records hold and the
#   topic's lack weigh NEW_SUBJECT_LACKING, whatever the record found alone holds: a subject the collection has no
#   record on shares the topic's key word ("Do probiotic supplements reduce uremic toxins?" after haemodialysis).
# History. Stop 29: a fixed 0.67 asked of the record found alone kept a dev switch of bench/answers/switches.jsonl
# on the topic (its record writes "parity" for "more children": 0.52, the topic's 0.13), so the rule became
# "twice the topic's share, and half the words, with the topic under 0.34"; half, since a follow-up in lay words
# ("Were tummy upsets rarer for kids?") can be held by neither, and 0 is twice 0. Stop 30, the lacking rule: its
# own record holds 0.17 and 0.36 of two dev switches whose lacked subject words weigh 0.55 and 0.71; those of the
# dev follow-ups in lay words ("bad breath", "keyhole operations", "preemies") weigh at most 0.23. Stop 36: the
# ratio and the cap kept four dev switches of a later batch (s65-s88) on the topic, whose own records hold
# 0.51-0.75 of their words and the topic's 0.26-0.45 ("Do patients lose more excess weight after a sleeve
# gastrectomy when a bigger volume of stomach is cut away?" after staple line leaks in sleeve gastrectomy): they
# hold 0.24-0.30 more, while the dev follow-ups without a cue word have their own records holding at most 0.34
# (s59), and cue words keep a question on the topic before this is asked.
NEW_SUBJECT_TOPIC = 0.34
NEW_SUBJECT_MARGIN = 0.2
NEW_SUBJECT_OWN = 0.5
NEW_SUBJECT_LACKING = 0.4
NEW_SUBJECT_WORDS = 3


@dataclass
class Conversation:
    """Questions in a row against one Retriever, with the settings ``qa chat`` can change.

    Whether a question follows up on the previous topic is decided by retrieval, not by cue words:
    the question is searched alone, and its closeness to the records it finds is compared with its
    closeness to the records that answered the topic. A follow-up ("was the pain reduction
    significant?") is about as close to the topic's records as to anything else; a new subject finds
    its own records far more closely, and then gets exactly the hits it would get asked on its own.
    Every response says what was searched.
    """

    retriever: Retriever
    k: int = 5
    mode: Mode = DEFAULT_MODE
    filters: Filters = field(default_factory=Filters)
    all_passages: bool = False
    topic: list[str] = field(default_factory=list)  # standalone questions so far; the last one anchors follow-ups
    topic_pmids: frozenset[str] = frozenset()  # the records that answered the last standalone question
    new_topic_gap: float = NEW_TOPIC_GAP

    def query_for(self, question: str) -> str | None:
        """The query to search for ``question``: the topic's question with it for a follow-up, else None."""
        if not self.topic:
            return None
        question = check_question(question)
        context = f"{self.topic[-1]} {question}"
        alone = self.retriever.search(question, 3, mode=self.mode, filters=self.filters, highlight=False)
        if not alone or alone[0].pmid in self.topic_pmids or alone[0].cosine is None:
            return context  # on its own it finds nothing, or the same records: stay on the topic
        if self._names_a_new_subject(question, alone[0].pmid):
            return None
        to_topic = self.retriever.closeness(question, sorted(self.topic_pmids))
        if alone[0].cosine < VAGUE_COSINE:  # too vague to stand alone: "and their safety?", or off-topic
            return context if to_topic >= TOPIC_FLOOR or sounds_like_follow_up(question) else None
        # A new subject finds its own records far more closely than the topic's; a follow-up does not.
        gap = alone[0].cosine - to_topic
        if gap >= self.new_topic_gap:
            return None
        return None if gap >= STANDALONE_GAP and self._answered_alone(question) else context

    def _answered_alone(self, question: str) -> bool:
        """Whether a question whose wording does not lean on the topic finds, on its own, a record the relevance
        model judges to answer it (``strong``). A follow-up in lay words ("Were tummy upsets rarer for kids?")
        can find another record closer than the topic's, but not one that answers it (relevance 0.01)."""
        if sounds_like_follow_up(question):
            return False
        found = self.retriever.search(question, 1, mode=self.mode, filters=self.filters)
        return bool(found) and found[0].relevance_label == "strong"

    def _names_a_new_subject(self, question: str, found_alone: str) -> bool:
        """Whether a complete question (three content words or more, no word pointing back) has content words
        the topic's records lack but the record it finds on its own holds, or subject words the topic's records
        lack and other records hold: then it names a new subject."""
        if sounds_like_follow_up(question) or len(self.retriever.content_terms(question)) < NEW_SUBJECT_WORDS:
            return False
        covered = self.retriever.coverage(question, sorted(self.topic_pmids | {found_alone}))
        topic = max((covered[p] for p in self.topic_pmids), default=0.0)
        own = covered.get(found_alone, 0.0)
        if own >= NEW_SUBJECT_OWN and own - topic >= NEW_SUBJECT_MARGIN:
            return True
        if topic >= NEW_SUBJECT_TOPIC:
            return False
        return self.retriever.lacking_share(question, sorted(self.topic_pmids)) >= NEW_SUBJECT_LACKING

    def ask(self, question: str) -> Response:
        question = check_question(question)
        query = self.query_for(question)
        response = self.retriever.ask(
            question, self.k, mode=self.mode, filters=self.filters, all_passages=self.all_passages, query=query
        )
        if query is None:
            if not self.topic and sounds_like_follow_up(question):
                note = f"{NO_EARLIER_QUESTION} {response.note}" if response.note else NO_EARLIER_QUESTION
                response = replace(response, note=note)
            elif self.topic:
                note = NEW_QUESTION.format(topic=clipped(self.topic[-1], 60))
                response = replace(response, note=f"{note} {response.note}" if response.note else note)
            if response.hits:  # a standalone question that found something anchors the follow-ups after it
                self.topic.append(question)
                cited = {s.pmid for s in response.answer.sentences}
                self.topic_pmids = frozenset(cited | {response.hits[0].pmid})
        return response

    def resume(self, question: str, pmids: Sequence[str] = ()) -> None:
        """Continue a conversation held elsewhere (an HTTP client, an assistant) from its last topic.

        ``pmids`` are the records that answered it, as ``context()`` gave them; without them the
        question is asked once more to find them.
        """
        self.new_topic()
        known = tuple(p for p in (normalize_pmid(p) for p in pmids) if p)
        if known:
            self.topic.append(check_question(question))
            self.topic_pmids = frozenset(known)
        else:
            self.ask(question)

    def context(self) -> dict[str, Any] | None:
        """What a stateless client sends back with its next question to keep the thread (``resume``)."""
        if not self.topic:
            return None
        return {"question": self.topic[-1], "pmids": sorted(self.topic_pmids)}

    def new_topic(self) -> None:
        self.topic.clear()
        self.topic_pmids = frozenset()

    def set_mode(self, mode: str) -> None:
        self.mode = check_mode(mode)

    def command(self, line: str) -> str | None:
        """Run a chat command such as ``/k 3``; returns what to tell the user, or None to quit."""
        cmd, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if cmd in ("/quit", "/exit", "/q"):
            return None
        if cmd == "/help":
            state = "on" if self.all_passages else "off"
            return CHAT_HELP.format(k=self.k, mode=self.mode, filters=self.filters.describe(), all=state)
        if cmd == "/new":
            self.new_topic()
            return "New topic."
        if cmd == "/k":
            if not (arg.isascii() and arg.isdigit() and 1 <= int(arg) <= MAX_CHAT_K):
                raise QAError(f"Usage: /k N  (N between 1 and {MAX_CHAT_K})")
            self.k = int(arg)
            return f"Showing {self.k} passages per answer."
        if cmd == "/mode":
            self.set_mode(arg)
            return f"Mode: {self.mode}."
        if cmd == "/filter":
            if arg:
                self.filters = parse_filters(arg, self.filters)
            return f"Filters: {self.filters.describe()}."
        if cmd == "/all":
            self.all_passages = not self.all_passages
            return f"Several passages per abstract: {'on' if self.all_passages else 'off'}."
        if cmd == "/reload":
            return "Switched to the newest build." if self.retriever.reload() else "Already on the newest build."
        raise QAError(f"Unknown command {cmd}; type /help")


__all__ = ["Conversation", "sounds_like_follow_up", "parse_filters", "CHAT_HELP", "NO_EARLIER_QUESTION", "NEW_QUESTION",
           "DEFAULT_MODE"]
