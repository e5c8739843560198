#!/usr/bin/env python3
"""Validate the hand-written answer-sentence benchmark in bench/answers/.

Standard library only.  Usage (from the repository root):

    python3 bench/answers/check.py            # data from ../shared/data or $QA_SHARED_DATA

Checks: line counts, ids, kinds/splits/cue balance, every PMID exists in the corpus files listed
in README.md, every answer is an exact substring of one AbstractText of that record (whitespace
collapsed, inline markup flattened) and looks like a whole sentence, no answer comes from an
objective/background-type section, no more than 2 questions per PMID (unstructured excepted),
cue:false follow-ups contain no cue word, and questions are not copies of the existing query sets.
Exits 1 and lists the problems if anything fails.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = Path(os.environ.get("QA_SHARED_DATA", REPO.parent / "shared" / "data"))

# The exact files the PMIDs come from (see README.md).
XML_FILES = [
    "pubmedqa/pubmed-1000.xml.gz",
    "seed/25589616.xml",
    "samples/biopython/pubmed1.xml",
    "samples/biopython/pubmed2.xml",
    "samples/biopython/pubmed6.xml",
    "samples/biopython/pubmed7.xml",
]
MEDLINE_FILES = ["samples/biopython/pubmed_result2.txt"]

# Section labels whose sentences state the question/aim/context rather than a finding.
NON_ANSWER_LABEL = re.compile(
    r"^(OBJECTIVES?|AIMS?|PURPOSE|BACKGROUND|INTRODUCTION|CONTEXT|STUDY OBJECTIVE|"
    r"BACKGROUND AND (PURPOSE|OBJECTIVES?|AIMS?|STUDY OBJECTIVE)|HYPOTHESIS|RATIONALE)$"
)
LEADING_CUE = re.compile(r"^\s*(and|but|also|so|then|what about|how about)\b", re.I)
PRONOUN_CUE = re.compile(r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|such|also)\b", re.I)

problems: list[str] = []


def fail(msg: str) -> None:
    problems.append(msg)


def collapse(s: str) -> str:
    return " ".join(s.split())


# ----------------------------------------------------------------- corpus


def load_xml(path: Path, corpus: dict) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        root = ET.parse(fh).getroot()
    for art in root.iter("PubmedArticle"):
        pmid_el = art.find("MedlineCitation/PMID")
        if pmid_el is None or not (pmid_el.text or "").strip():
            continue
        sections = []
        for a in art.findall(".//Abstract/AbstractText"):
            text = collapse("".join(a.itertext()))
            if text:
                sections.append((a.get("Label"), text))
        corpus[pmid_el.text.strip()] = {"file": str(path.relative_to(SHARED)), "sections": sections}


def load_medline(path: Path, corpus: dict) -> None:
    """Minimal MEDLINE reader: 'TAG - value' lines, 6-space continuation lines, blank line between records."""
    rec: dict[str, list[str]] = {}
    last = None

    def flush() -> None:
        if "PMID" in rec:
            ab = collapse(" ".join(rec.get("AB", [])))
            corpus[rec["PMID"][0].strip()] = {
                "file": str(path.relative_to(SHARED)),
                "sections": [(None, ab)] if ab else [],
            }

    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            flush()
            rec, last = {}, None
        elif line.startswith("      ") and last:
            rec[last][-1] += " " + line.strip()
        elif len(line) >= 5 and line[4] == "-":
            last = line[:4].strip()
            rec.setdefault(last, []).append(line[6:] if len(line) > 6 else "")
    flush()


def load_corpus() -> dict:
    if not SHARED.is_dir():
        sys.exit(f"data not found at {SHARED}; clone next to ../shared or set QA_SHARED_DATA")
    corpus: dict = {}
    for f in XML_FILES:
        load_xml(SHARED / f, corpus)
    for f in MEDLINE_FILES:
        load_medline(SHARED / f, corpus)
    return corpus


# ----------------------------------------------------------------- helpers


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                fail(f"{path.name}:{n}: blank line")
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                fail(f"{path.name}:{n}: bad JSON ({e})")
    return rows


def whole_sentence(text: str, start: int, ans: str) -> bool:
    end = start + len(ans)
    before_ok = start == 0 or (text[start - 1] == " " and re.search(r"[.?!:;)\]]$", text[: start - 1]) is not None)
    after_ok = end == len(text) or text[end] == " "
    ends_ok = re.search(r"[.?!][\"')\]]?$", ans) is not None
    return before_ok and after_ok and ends_ok


def check_answers(where: str, pmid: str, answers, corpus: dict, section_labels: collections.Counter) -> None:
    if not isinstance(answers, list) or not 1 <= len(answers) <= 3:
        fail(f"{where}: answers must be a list of 1-3 sentences")
        return
    if len(set(answers)) != len(answers):
        fail(f"{where}: duplicate answer sentences")
    rec = corpus.get(pmid)
    if rec is None:
        return
    for ans in answers:
        if not isinstance(ans, str) or ans != collapse(ans) or not ans:
            fail(f"{where}: answer is not a clean non-empty string: {ans!r}")
            continue
        hits = [(label, text) for label, text in rec["sections"] if ans in text]
        if not hits:
            fail(f"{where}: answer not found in PMID {pmid}: {ans[:80]!r}")
            continue
        label, text = hits[0]
        section_labels[label or "(unlabelled)"] += 1
        if not whole_sentence(text, text.index(ans), ans):
            fail(f"{where}: answer is not a whole sentence: {ans[:80]!r}")
        if label and NON_ANSWER_LABEL.match(label.upper()):
            fail(f"{where}: answer comes from a {label} section (restates the aim, not a finding): {ans[:80]!r}")


def tokens(s: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", s.lower()))


def load_existing_queries() -> list[str]:
    out = []
    for p in (SHARED / "pubmedqa" / "queries.jsonl", REPO / "bench" / "paraphrase" / "queries.jsonl"):
        if p.exists():
            with open(p, encoding="utf-8") as fh:
                out += [json.loads(line)["text"] for line in fh if line.strip()]
    return out


def not_a_copy(where: str, q: str, existing: list[tuple[str, set]]) -> float:
    t = tokens(q)
    best = 0.0
    for text, et in existing:
        if collapse(q).lower() == collapse(text).lower():
            fail(f"{where}: question copies an existing query: {q!r}")
        if t and et:
            best = max(best, len(t & et) / len(t | et))
    if best >= 0.5:
        fail(f"{where}: question too close to an existing query (Jaccard {best:.2f}): {q!r}")
    return best


def check_ids(name: str, rows: list[dict], prefix: str) -> None:
    ids = [r.get("id") for r in rows]
    for i, x in enumerate(ids, 1):
        if not isinstance(x, str) or not re.fullmatch(prefix + r"\d{2,3}", x):
            fail(f"{name}: line {i}: bad id {x!r}")
    dup = [x for x, c in collections.Counter(ids).items() if c > 1]
    if dup:
        fail(f"{name}: duplicate ids {dup}")


# ----------------------------------------------------------------- files


def check_questions(corpus: dict, existing) -> dict:
    rows = read_jsonl(HERE / "questions.jsonl")
    if len(rows) != 60:
        fail(f"questions.jsonl: {len(rows)} lines, expected 60")
    check_ids("questions.jsonl", rows, "a")
    want = {"plain": 20, "technical": 20, "unstructured": 10, "numeric": 10}
    kinds = collections.Counter(r.get("kind") for r in rows)
    if dict(kinds) != want:
        fail(f"questions.jsonl: kind counts {dict(kinds)}, expected {want}")
    by = collections.Counter((r.get("kind"), r.get("split")) for r in rows)
    for k, n in want.items():
        if by[(k, "dev")] != n // 2 or by[(k, "test")] != n // 2:
            dev, test = by[(k, "dev")], by[(k, "test")]
            fail(f"questions.jsonl: {k} split {dev} dev / {test} test, expected {n // 2}/{n // 2}")
    per_pmid = collections.Counter(r.get("pmid") for r in rows if r.get("kind") != "unstructured")
    for p, c in per_pmid.items():
        if c > 2:
            fail(f"questions.jsonl: {c} questions on PMID {p} (max 2 outside 'unstructured')")
    labels: collections.Counter = collections.Counter()
    best = 0.0
    splits_of = collections.defaultdict(set)
    for r in rows:
        where = f"questions.jsonl {r.get('id')}"
        if set(r) != {"id", "kind", "split", "question", "pmid", "answers", "note"}:
            fail(f"{where}: keys {sorted(r)}")
        if r.get("split") not in ("dev", "test"):
            fail(f"{where}: bad split {r.get('split')!r}")
        q, pmid = r.get("question"), str(r.get("pmid"))
        if not isinstance(q, str) or not q.strip():
            fail(f"{where}: empty question")
            continue
        if not isinstance(r.get("note"), str) or not r["note"].strip():
            fail(f"{where}: empty note")
        if pmid not in corpus:
            fail(f"{where}: PMID {pmid} not in corpus")
            continue
        splits_of[pmid].add(r.get("split"))
        check_answers(where, pmid, r.get("answers"), corpus, labels)
        rec = corpus[pmid]
        unstructured = all(label is None for label, _ in rec["sections"])
        if r.get("kind") == "unstructured" and not unstructured:
            fail(f"{where}: PMID {pmid} has a structured abstract")
        if r.get("kind") != "unstructured" and unstructured:
            fail(f"{where}: PMID {pmid} is unstructured but kind is {r.get('kind')}")
        if r.get("kind") == "numeric" and not any(re.search(r"\d", a) for a in r.get("answers", [])):
            fail(f"{where}: numeric question but no answer sentence holds a number")
        best = max(best, not_a_copy(where, q, existing))
    both = sorted(p for p, s in splits_of.items() if len(s) > 1)
    return {
        "rows": rows,
        "kinds": kinds,
        "by": by,
        "labels": labels,
        "pmids": len(splits_of),
        "both_splits": both,
        "max_jaccard": best,
    }


def check_conversations(corpus: dict, existing) -> dict:
    rows = read_jsonl(HERE / "conversations.jsonl")
    if len(rows) != 40:
        fail(f"conversations.jsonl: {len(rows)} lines, expected 40")
    check_ids("conversations.jsonl", rows, "c")
    kinds = collections.Counter(r.get("kind") for r in rows)
    if dict(kinds) != {"follow_up": 30, "switch": 10}:
        fail(f"conversations.jsonl: kind counts {dict(kinds)}, expected follow_up 30 / switch 10")
    by = collections.Counter((r.get("kind"), r.get("split")) for r in rows)
    for k, n in (("follow_up", 30), ("switch", 10)):
        if by[(k, "dev")] != n // 2 or by[(k, "test")] != n // 2:
            fail(f"conversations.jsonl: {k} split {by[(k, 'dev')]}/{by[(k, 'test')]}, expected {n // 2}/{n // 2}")
    cue = collections.Counter((r.get("kind"), r.get("cue"), r.get("split")) for r in rows)
    nofree = cue[("follow_up", False, "dev")] + cue[("follow_up", False, "test")]
    if nofree < 15:
        fail(f"conversations.jsonl: only {nofree} follow_up with cue:false (need >= 15)")
    labels: collections.Counter = collections.Counter()
    best = 0.0
    for r in rows:
        where = f"conversations.jsonl {r.get('id')}"
        if set(r) != {"id", "kind", "cue", "split", "turns"}:
            fail(f"{where}: keys {sorted(r)}")
        if r.get("split") not in ("dev", "test") or not isinstance(r.get("cue"), bool):
            fail(f"{where}: bad split/cue")
        turns = r.get("turns")
        if not isinstance(turns, list) or len(turns) != 2:
            fail(f"{where}: needs exactly 2 turns")
            continue
        for t in turns:
            if not isinstance(t.get("question"), str) or not t["question"].strip():
                fail(f"{where}: empty question")
            if str(t.get("pmid")) not in corpus:
                fail(f"{where}: PMID {t.get('pmid')} not in corpus")
            best = max(best, not_a_copy(where, t.get("question", ""), existing))
        if "answers" in turns[0]:
            fail(f"{where}: answers belong on turn 2 only")
        p1, p2 = str(turns[0].get("pmid")), str(turns[1].get("pmid"))
        q2 = turns[1].get("question", "")
        has_cue = bool(LEADING_CUE.search(q2) or PRONOUN_CUE.search(q2))
        if r.get("kind") == "follow_up":
            if p1 != p2:
                fail(f"{where}: follow_up turns must share one PMID ({p1} vs {p2})")
            if "answers" not in turns[1]:
                fail(f"{where}: follow_up turn 2 needs answers")
            else:
                check_answers(where, p2, turns[1]["answers"], corpus, labels)
            if r.get("cue") is False and has_cue:
                fail(f"{where}: cue:false but turn 2 has a cue word: {q2!r}")
            if r.get("cue") is True and not has_cue:
                fail(f"{where}: cue:true but turn 2 has no cue word: {q2!r}")
        elif r.get("kind") == "switch":
            if p1 == p2:
                fail(f"{where}: switch must change PMID")
            if LEADING_CUE.search(q2):
                fail(f"{where}: switch turn 2 should be self-contained: {q2!r}")
            if "answers" in turns[1]:
                check_answers(where, p2, turns[1]["answers"], corpus, labels)
    return {"rows": rows, "kinds": kinds, "by": by, "cue": cue, "labels": labels, "max_jaccard": best}


def check_offtopic() -> dict:
    rows = read_jsonl(HERE / "offtopic.jsonl")
    if len(rows) != 30:
        fail(f"offtopic.jsonl: {len(rows)} lines, expected 30")
    check_ids("offtopic.jsonl", rows, "o")
    for r in rows:
        if set(r) != {"id", "question"} or not isinstance(r.get("question"), str) or not r["question"].strip():
            fail(f"offtopic.jsonl {r.get('id')}: needs exactly id and a non-empty question")
    qs = [r.get("question") for r in rows]
    if len(set(qs)) != len(qs):
        fail("offtopic.jsonl: duplicate questions")
    return {"rows": rows}


# s41-s64, written at stop 34 after every rule: s41-s49 and s59-s61 became dev after one measurement, the rest
# stay held out ("fresh"); s65-s88 (dev) and s89-s104 (held out, "fresh2"), stop 36
SWITCH_COUNTS = {("switch", "dev"): 47, ("switch", "test"): 8, ("follow_up", "dev"): 21, ("switch", "fresh"): 9,
                 ("follow_up", "fresh"): 3, ("switch", "fresh2"): 12, ("follow_up", "fresh2"): 4}


def check_switches(corpus: dict) -> dict:
    """switches.jsonl: two-turn chats whose turn 2 shares words or a field with turn 1: 28 topic switches
    (20 dev / 8 test) and 12 dev follow-ups in words the record does not use; then s41-s64: 18 switches and 6
    follow-ups written after every rule they were first measured on, half of them held out ("fresh"); s65-s104, stop
    36: 30 switches and 10 follow-ups, s89-s104 held out ("fresh2")."""
    rows = read_jsonl(HERE / "switches.jsonl")
    check_ids("switches.jsonl", rows, "s")
    counts = collections.Counter((r.get("kind"), r.get("split")) for r in rows)
    if counts != SWITCH_COUNTS:
        fail(f"switches.jsonl: counts {dict(counts)}, expected {SWITCH_COUNTS}")
    for r in rows:
        where = f"switches.jsonl {r.get('id')}"
        turns = r.get("turns")
        if set(r) != {"id", "kind", "cue", "split", "turns", "note"} or r.get("cue") is not False:
            fail(f"{where}: needs id, kind, cue false, split, turns, note")
        if not isinstance(turns, list) or len(turns) != 2 or not all(isinstance(t, dict) for t in turns):
            fail(f"{where}: needs exactly 2 turns, each an object")
            continue
        if any(not isinstance(t.get("question"), str) or not t["question"].strip() for t in turns):
            fail(f"{where}: empty question")
        if str(turns[0].get("pmid")) not in corpus:
            fail(f"{where}: turn 1 PMID {turns[0].get('pmid')} not in corpus")
        if r.get("kind") == "switch":
            if turns[1].get("pmid") is not None and str(turns[1]["pmid"]) not in corpus:
                fail(f"{where}: turn 2 PMID {turns[1].get('pmid')} not in corpus (null when no record answers it)")
            if turns[0].get("pmid") == turns[1].get("pmid"):
                fail(f"{where}: switch must change PMID")
        elif turns[0].get("pmid") != turns[1].get("pmid"):
            fail(f"{where}: a follow-up keeps turn 1's PMID")
        else:
            check_answers(where, str(turns[1]["pmid"]), turns[1].get("answers"), corpus, collections.Counter())
        q2 = turns[1].get("question", "")
        if LEADING_CUE.search(q2) or PRONOUN_CUE.search(q2):
            fail(f"{where}: turn 2 should have no cue word: {q2!r}")
    return {"rows": rows, "counts": counts}


IN_SCOPE_KINDS = {"clinician": 24, "plain": 24, "short": 12}


def check_in_scope(corpus: dict, existing) -> dict:
    """in_scope.jsonl: 60 natural questions the collection answers, each on its own record, 30 dev / 30 test
    alternating in file order, balanced within each kind."""
    rows = read_jsonl(HERE / "in_scope.jsonl")
    check_ids("in_scope.jsonl", rows, "i")
    kinds = collections.Counter(r.get("kind") for r in rows)
    by = collections.Counter((r.get("kind"), r.get("split")) for r in rows)
    if len(rows) != 60 or kinds != IN_SCOPE_KINDS or any(by[(k, "dev")] != by[(k, "test")] for k in kinds):
        fail(f"in_scope.jsonl: {len(rows)} lines, kinds {dict(kinds)}, by split {dict(by)}")
    best = 0.0
    for i, r in enumerate(rows):
        where = f"in_scope.jsonl {r.get('id')}"
        if set(r) != {"id", "split", "kind", "question", "pmid", "note"}:
            fail(f"{where}: needs exactly id, split, kind, question, pmid, note")
            continue
        if r["split"] != ("dev" if i % 2 == 0 else "test"):
            fail(f"{where}: splits alternate dev/test in file order")
        if str(r["pmid"]) not in corpus:
            fail(f"{where}: PMID {r['pmid']} not in corpus")
        if r["kind"] == "short" and not 3 <= len(r["question"].split()) <= 6:
            fail(f"{where}: a short question has 3 to 6 words")
        best = max(best, not_a_copy(where, r["question"], existing))
    pmids = [r.get("pmid") for r in rows]
    if len(set(pmids)) != len(pmids):
        fail("in_scope.jsonl: a PMID is used twice")
    return {"rows": rows, "by": by, "max_jaccard": best}


VERDICT_KINDS = {"safety": 24, "effect": 24, "population": 12}  # dev and test, half each
FRESH_VERDICT_KINDS = {"effect": 16, "safety": 12, "association": 12}  # v61-v100, written at stop 33
FRESH2_VERDICT_KINDS = {"comparison": 14, "effect": 10, "safety": 8, "association": 8}  # v101-v140, stop 34
YES_NO_OPENING = re.compile(r"^(is|are|was|were|do|does|did|can|could|should|would|will|has|have|had|may|might|must)\b",
                            re.I)  # fmt: skip


def check_quoted_yes_no(where: str, r: dict, corpus: dict, existing) -> float:
    """A row's question is a yes/no question, not a copy of an existing query, and its "evidence" is quoted
    verbatim from its record (verdicts.jsonl, comparisons.jsonl); its closest Jaccard to the existing queries."""
    q = r["question"].strip()
    if not (YES_NO_OPENING.match(q) or q.endswith("?")):
        fail(f"{where}: not a yes/no question: {q!r}")
    rec = corpus.get(str(r["pmid"]))
    if rec is None:
        fail(f"{where}: PMID {r['pmid']} not in corpus")
    elif collapse(r["evidence"]) not in collapse(" ".join(text for _, text in rec["sections"])):
        fail(f"{where}: evidence not found verbatim in PMID {r['pmid']}")
    return not_a_copy(where, q, existing)


def check_verdicts(corpus: dict, existing) -> dict:
    """verdicts.jsonl: 140 natural yes/no questions, each on its own record, with the verdict its conclusions give
    ("unclear" for every "population" one: the record does not study who is asked about), v01-v30 dev and
    v31-v60 test, balanced by kind, v61-v100 "fresh" and v101-v140 "fresh2" (later held-out batches); each
    "evidence" quoted exactly from the record."""
    rows = read_jsonl(HERE / "verdicts.jsonl")
    check_ids("verdicts.jsonl", rows, "v")
    by = collections.Counter((r.get("kind"), r.get("split")) for r in rows)
    kinds = collections.Counter(r.get("kind") for r in rows[:60])
    fresh = collections.Counter(r.get("kind") for r in rows[60:100])
    fresh2 = collections.Counter(r.get("kind") for r in rows[100:])
    if (len(rows) != 140 or kinds != VERDICT_KINDS or fresh != FRESH_VERDICT_KINDS or fresh2 != FRESH2_VERDICT_KINDS
            or any(by[(k, "dev")] != by[(k, "test")] for k in kinds)):  # fmt: skip
        fail(f"verdicts.jsonl: {len(rows)} lines, kinds {dict(kinds)}, fresh {dict(fresh)}, by split {dict(by)}")
    best = 0.0
    for i, r in enumerate(rows):
        where = f"verdicts.jsonl {r.get('id')}"
        if set(r) != {"id", "split", "kind", "question", "pmid", "verdict", "evidence", "note"}:
            fail(f"{where}: needs exactly id, split, kind, question, pmid, verdict, evidence, note")
            continue
        if r["split"] != ("dev" if i < 30 else "test" if i < 60 else "fresh" if i < 100 else "fresh2"):
            fail(f"{where}: v01-v30 are dev, v31-v60 test, v61-v100 fresh, v101-v140 fresh2")
        if r["verdict"] not in ("yes", "no", "mixed", "unclear") or (r["kind"] == "population") > (
                r["verdict"] == "unclear"):  # fmt: skip
            fail(f"{where}: verdict {r['verdict']!r} (yes, no, mixed or unclear; unclear for population)")
        best = max(best, check_quoted_yes_no(where, r, corpus, existing))
    pmids = [r.get("pmid") for r in rows]
    if len(set(pmids)) != len(pmids):
        fail("verdicts.jsonl: a PMID is used twice")
    return {"rows": rows, "by": by, "verdicts": collections.Counter((r.get("split"), r.get("verdict")) for r in rows),
            "max_jaccard": best}  # fmt: skip


def check_comparisons(corpus: dict, existing, verdict_pmids: set) -> dict:
    """comparisons.jsonl: natural yes/no questions that compare two options, two per record (both in one split,
    records alternating dev / test in k01-k50; k51-k90 a later held-out batch, "fresh"; k91-k150 dev and k151-k190
    held out, "fresh2", stop 36), on records verdicts.jsonl does not use; each "evidence" quoted exactly."""
    rows = read_jsonl(HERE / "comparisons.jsonl")
    check_ids("comparisons.jsonl", rows, "k")
    fields = {"id", "split", "kind", "form", "question", "pmid", "verdict", "favoured", "evidence", "note"}
    split_of: dict = {}
    best = 0.0
    for r in rows:
        where = f"comparisons.jsonl {r.get('id')}"
        if set(r) != fields:
            fail(f"{where}: needs exactly {', '.join(sorted(fields))}")
            continue
        if split_of.setdefault(r["pmid"], r["split"]) != r["split"]:
            fail(f"{where}: split {r['split']!r} differs from that of its record's other question")
        number = int(r["id"][1:])
        batch = sum(number > n for n in (50, 90, 150))  # k01-k50, k51-k90, k91-k150, k151-k190
        expected = {0: ("dev", "test"), 1: ("fresh",), 2: ("dev",)}.get(batch, ("fresh2",))
        if r["split"] not in expected or number > 190:
            fail(f"{where}: k01-k50 are dev and test, k51-k90 fresh, k91-k150 dev, k151-k190 fresh2")
        if r["kind"] != "comparison" or r["form"] not in ("better", "as_good", "fewer", "rather"):
            fail(f"{where}: kind comparison, form better, as_good, fewer or rather")
        if r["verdict"] not in ("yes", "no", "unclear") or r["favoured"] not in ("asked", "other", "neither"):
            fail(f"{where}: verdict {r['verdict']!r}, favoured {r['favoured']!r}")
        if r["pmid"] in verdict_pmids:
            fail(f"{where}: PMID {r['pmid']} is used by verdicts.jsonl too")
        best = max(best, check_quoted_yes_no(where, r, corpus, existing))
    by = collections.Counter((r.get("split"), r.get("verdict")) for r in rows)
    return {"rows": rows, "by": by, "max_jaccard": best}


def main() -> int:
    corpus = load_corpus()
    existing = [(q, tokens(q)) for q in load_existing_queries()]
    q = check_questions(corpus, existing)
    c = check_conversations(corpus, existing)
    o = check_offtopic()
    s = check_switches(corpus)
    i = check_in_scope(corpus, existing)
    v = check_verdicts(corpus, existing)
    cmp = check_comparisons(corpus, existing, {r.get("pmid") for r in v["rows"]})

    print(f"corpus: {len(corpus)} records from {len(XML_FILES) + len(MEDLINE_FILES)} files under {SHARED}")
    print(f"questions.jsonl: {len(q['rows'])} questions on {q['pmids']} PMIDs")
    for k in ("plain", "technical", "unstructured", "numeric"):
        print(f"  {k:12s} {q['kinds'][k]:2d}  (dev {q['by'][(k, 'dev')]}, test {q['by'][(k, 'test')]})")
    print(f"  answer sections: {dict(q['labels'].most_common())}")
    print(f"  PMIDs in both splits: {q['both_splits'] or 'none'}")
    print(f"  max token Jaccard vs existing queries: {q['max_jaccard']:.2f}")
    print(f"conversations.jsonl: {len(c['rows'])} conversations")
    for k in ("follow_up", "switch"):
        print(f"  {k:10s} {c['kinds'][k]:2d}  (dev {c['by'][(k, 'dev')]}, test {c['by'][(k, 'test')]})")
    for cue in (False, True):
        d, t = c["cue"][("follow_up", cue, "dev")], c["cue"][("follow_up", cue, "test")]
        print(f"  follow_up cue:{str(cue).lower():5s} {d + t:2d}  (dev {d}, test {t})")
    print(f"  answer sections: {dict(c['labels'].most_common())}")
    print(f"  max token Jaccard vs existing queries: {c['max_jaccard']:.2f}")
    qp = {r["pmid"] for r in q["rows"]}
    cp = {t["pmid"] for r in c["rows"] for t in r["turns"]}
    print(f"  PMIDs shared with questions.jsonl: {sorted(qp & cp) or 'none'}")
    print(f"offtopic.jsonl: {len(o['rows'])} questions")
    print(f"switches.jsonl: {len(s['rows'])} conversations: {dict(s['counts'])}")
    print(f"in_scope.jsonl: {len(i['rows'])} questions: {dict(i['by'])}")
    print(f"  max token Jaccard vs existing queries: {i['max_jaccard']:.2f}")
    print(f"verdicts.jsonl: {len(v['rows'])} questions: {dict(v['by'])}; verdicts {dict(v['verdicts'])}")
    print(f"  max token Jaccard vs existing queries: {v['max_jaccard']:.2f}")
    print(f"comparisons.jsonl: {len(cmp['rows'])} questions: {dict(cmp['by'])}")
    print(f"  max token Jaccard vs existing queries: {cmp['max_jaccard']:.2f}")
    if problems:
        print(f"\nFAILED: {len(problems)} problem(s)")
        for p in problems:
            print("  - " + p)
        return 1
    print("\nOK: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
