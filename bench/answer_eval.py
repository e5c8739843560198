"""What a user reads first, measured on the hand-labelled sets in bench/answers/ (for quality.py, tune_answers.py).

- answer: does the answer block hold a marked answer sentence (60 questions, and the 30 follow-ups)?
- follow-ups: is the right record first after a follow-up; do topic switches get the standalone ranking?
- nothing relevant: are the 30 off-topic questions refused, and is any real question refused?
- shared: on the 1,000 shared questions, is the first answer sentence from the gold record's Results or
  Conclusions; are the hits labelled strong the gold record, and the weak ones not; is the bottom line
  PubMedQA's expert verdict?
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import BENCH

ANSWERS = BENCH / "answers"


def load(name: str) -> list[dict[str, Any]]:
    with open(ANSWERS / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def holds(answer_texts: list[str], marked: list[str]) -> bool:
    return any(same(t, m) for t in answer_texts for m in marked)


@dataclass
class Cached:
    """One retrieval, kept so that answer weights can be tried without searching again."""

    item: dict[str, Any]
    hits: list[Any]
    sentences: dict[str, Any]
    question_vector: np.ndarray


def cache_questions(retriever: Any, items: list[dict[str, Any]]) -> list[Cached]:
    out = []
    for item in items:
        found = retriever._search(item["question"], 5, mode="hybrid", filters=None, all_passages=False)
        out.append(Cached(item, found.hits, found.sentences, found.query_vector))
    return out


def answer_rate(cached: list[Cached], weights: Any = None) -> dict[str, Any]:
    """Share of questions whose answer block holds a marked sentence, overall and by kind and split."""
    from qa.ask.answer import DEFAULT_WEIGHTS, extract_answer

    tally: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for c in cached:
        answer = extract_answer(c.hits, c.sentences, c.question_vector, weights or DEFAULT_WEIGHTS)
        ok = holds([s.text for s in answer.sentences], c.item["answers"])
        first = bool(answer.sentences) and holds([answer.sentences[0].text], c.item["answers"])
        for key in ("all", c.item.get("kind", "?"), c.item.get("split", "?")):
            totals[key] += 1
            tally[key] += ok
            tally[key + ":first"] += first
    return {key: {"held": tally[key], "first": tally[key + ":first"], "of": n, "rate": round(tally[key] / n, 4)}
            for key, n in totals.items()}  # fmt: skip


def conversations(retriever: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Follow-ups: right record first, marked sentence held; switches: exactly the standalone hits."""
    from qa.ask.conversation import Conversation

    rows = []
    for item in items:
        first, second = item["turns"]
        talk = Conversation(retriever, k=5)
        talk.ask(first["question"])
        response = talk.ask(second["question"])
        row = {"id": item["id"], "kind": item["kind"], "cue": item.get("cue"), "split": item["split"],
               "searched_with_context": response.query is not None,
               "right_first": bool(response.hits) and response.hits[0].pmid == second["pmid"],
               "answer_held": holds([s.text for s in response.answer.sentences], second.get("answers", [])),
               }  # fmt: skip
        if item["kind"] == "switch":
            alone = retriever.ask(second["question"], 5)
            row["equals_standalone"] = [(h.pmid, h.text) for h in response.hits] == [
                (h.pmid, h.text) for h in alone.hits
            ]
        rows.append(row)

    def share(kind: str, key: str, split: str | None = None, cue: bool | None = None) -> dict[str, Any]:
        chosen = [r for r in rows if r["kind"] == kind and (split is None or r["split"] == split)
                  and (cue is None or r["cue"] == cue)]  # fmt: skip
        n = sum(bool(r[key]) for r in chosen)
        return {"n": n, "of": len(chosen), "rate": round(n / len(chosen), 4) if chosen else None}

    return {
        "follow_up_right_first": share("follow_up", "right_first"),
        "follow_up_right_first_dev": share("follow_up", "right_first", "dev"),
        "follow_up_right_first_test": share("follow_up", "right_first", "test"),
        "follow_up_right_first_no_cue": share("follow_up", "right_first", cue=False),
        "follow_up_answer_held": share("follow_up", "answer_held"),
        "switch_equals_standalone": share("switch", "equals_standalone"),
        "switch_right_first": share("switch", "right_first"),
        "rows": rows,
    }


def refusals(retriever: Any, offtopic: list[dict[str, Any]], real: list[str]) -> dict[str, Any]:
    refused = [o["id"] for o in offtopic if not retriever.ask(o["question"], 5).hits]
    lost = [q for q in real if not retriever.ask(q, 1).hits]
    in_scope = load("in_scope.jsonl") + [v for v in load("verdicts.jsonl") if v["split"] in FRESH]
    natural = {split: [q["question"] for q in in_scope if q["split"] == split] for split in splits_of(in_scope)}
    return {"in_scope": {split: {"refused": sum(q in lost for q in asked), "of": len(asked)}
                         for split, asked in natural.items()},  # fmt: skip
            "offtopic_refused": len(refused), "offtopic": len(offtopic),
            "offtopic_rate": round(len(refused) / len(offtopic), 4),
            "out_of_scope": unanswerable(retriever, load("out_of_scope.jsonl")),
            "near_together": unanswerable(retriever, load("near_together.jsonl")),
            "real_refused": len(lost), "real": len(real), "real_refused_questions": lost[:20]}  # fmt: skip


# fresh, fresh2: later held-out batches, each written after every rule it was first measured on
SPLITS = ("dev", "test", "fresh", "fresh2")
FRESH = ("fresh", "fresh2")


def splits_of(items: list[dict[str, Any]]) -> list[str]:
    """The splits ``items`` use, in SPLITS order: "fresh" only where a set has such a batch."""
    return [split for split in SPLITS if any(i["split"] == split for i in items)]


def unanswerable(retriever: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Per split, questions the collection cannot answer: refused, answered under "Uncertain", or answered
    plainly (the best record strong: what a reader would take for evidence)."""
    by_split = {}
    for split in splits_of(items):
        responses = [(o["question"], retriever.ask(o["question"], 5)) for o in items if o["split"] == split]
        kept = [q for q, r in responses if r.hits]
        plain = [q for q, r in responses if r.hits and r.hits[0].relevance_label == "strong"]
        by_split[split] = {"refused": len(responses) - len(kept), "of": len(responses),
                           "uncertain": len(kept) - len(plain), "plain": len(plain), "answered": kept}  # fmt: skip
    return by_split


def cases(retriever: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The held-out cases of bench/answers/cases.jsonl: for each, whether the last turn is read right and
    whether its answer holds the marked sentence with nothing from another record."""
    from qa.ask.conversation import Conversation

    rows = []
    for item in items:
        talk = Conversation(retriever, k=5)
        for turn in item["turns"][:-1]:
            talk.ask(turn["question"])
        anchored = not item["turns"][0].get("pmid") or item["turns"][0]["pmid"] in talk.topic_pmids
        last = item["turns"][-1]
        response = talk.ask(last["question"])
        sentences = response.answer.sentences
        row = {"id": item["id"], "kind": item["kind"], "split": item["split"],
               "searched_with_context": response.query is not None}  # fmt: skip
        if item["kind"] == "switch":
            alone = retriever.ask(last["question"], 5)
            # a switch away from a topic that was never set would pass for nothing: turn 1 must find its record
            row["ok"] = anchored and response.query is None and [h.pmid for h in response.hits] == [
                h.pmid for h in alone.hits]  # fmt: skip
        else:
            row["ok"] = (holds([s.text for s in sentences], last.get("answers", []))
                         and all(s.pmid == last["pmid"] for s in sentences))  # fmt: skip
        row["answer_pmids"] = sorted({s.pmid for s in sentences})
        rows.append(row)
    return rows


VERDICT_OF = {"yes": "yes", "no": "no", "maybe": "mixed"}  # PubMedQA's "maybe" is our "mixed"
SAID = ("yes", "no", "mixed", "unclear")


def judged(tally: Counter[str], key: str, response: Any, gold: set[str]) -> None:
    """Count, under ``key``, the shown hits by label and whether each is the gold record (hit relevance), and the
    answer sentences by whether they come from it: a weak hit that is the gold record is a miss of the label."""
    for hit in response.hits:
        label = hit.relevance_label or "unjudged"
        tally[f"{key}:{label}"] += 1
        tally[f"{key}:{label} gold"] += hit.pmid in gold
    tally[f"{key}:sentences"] += len(response.answer.sentences)
    tally[f"{key}:sentences gold"] += sum(s.pmid in gold for s in response.answer.sentences)


def shared_answers(retriever: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                   decisions: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """The shared questions, each asked once (k=5) and read four ways:
    - the first answer sentence: from the gold record's Results or Conclusions ("first"), and from the record
      ranked first when that is the gold one ("agreement");
    - hit relevance by half: of the hits labelled strong, and of those labelled weak, how many are the gold
      record; and how many answer sentences come from it ("judged");
    - the bottom line against PubMedQA's expert verdict (``decisions``), by half, as a confusion table
      ("verdict"; "unclear" also when the question is refused)."""
    from common import half_of

    from qa.ask.answer import section_kind
    from qa.ask.verdict import asks_about_safety, is_yes_no

    first: Counter[str] = Counter()
    agreement: Counter[str] = Counter()
    tally: Counter[str] = Counter()
    verdicts: dict[str, Counter[tuple[str, str]]] = {"tune": Counter(), "test": Counter()}
    safety: dict[str, Counter[tuple[str, str]]] = {"tune": Counter(), "test": Counter()}
    for qid, text in queries.items():
        gold = set(qrels.get(qid, {}))
        if not gold:
            continue
        response = retriever.ask(text, 5)
        half = half_of(qid)
        judged(tally, half, response, gold)
        if qid in decisions:
            verdicts[half][(VERDICT_OF[decisions[qid]], response.answer.verdict or "unclear")] += 1
            if is_yes_no(text) and asks_about_safety(text):
                safety[half][(VERDICT_OF[decisions[qid]], response.answer.verdict or "unclear")] += 1
        sentences = response.answer.sentences
        first["questions"] += 1
        if response.hits and response.hits[0].pmid in gold:
            agreement["questions_ranked_first"] += 1
            agreement["no_answer"] += not sentences
            agreement["first_sentence_from_it"] += bool(sentences) and sentences[0].pmid == response.hits[0].pmid
        if not sentences:
            first["no answer"] += 1
            continue
        first["first sentence is a question"] += sentences[0].text.rstrip().endswith("?")
        if sentences[0].pmid in gold:
            first["from gold"] += 1
            first["from gold results/conclusions"] += section_kind(sentences[0].section) == 1
    n, ranked = first["questions"], agreement["questions_ranked_first"]
    return {"first": {**dict(first), "rate": round(first["from gold results/conclusions"] / n, 4) if n else None},
            "agreement": {**dict(agreement), "share": round(agreement["first_sentence_from_it"] / ranked, 4)
                          if ranked else 0.0},
            "judged": judged_halves(tally, ("tune", "test")),
            "verdict": {half: {g: {said: table[(g, said)] for said in SAID} for g in ("yes", "no", "mixed")}
                        for half, table in verdicts.items()},
            "safety": {half: {g: {said: table[(g, said)] for said in SAID} for g in ("yes", "no", "mixed")}
                       for half, table in safety.items()}}  # fmt: skip


def judged_halves(tally: Counter[str], halves: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """``judged``'s counts as {half: {"strong": n, "strong gold": n, ..., "sentences gold": n}}."""
    names = ("strong", "strong gold", "weak", "weak gold", "sentences", "sentences gold")
    return {half: {name: tally[f"{half}:{name}"] for name in names} for half in halves}


def labelled_judgements(retriever: Any) -> dict[str, dict[str, int]]:
    """Hit relevance and answer sentences, as ``shared_answers`` reads them, on our own questions that name their
    record (``questions.jsonl``, ``in_scope.jsonl``), by split."""
    tally: Counter[str] = Counter()
    for item in load("questions.jsonl") + load("in_scope.jsonl"):
        judged(tally, item["split"], retriever.ask(item["question"], 5), {item["pmid"]})
    return judged_halves(tally, ("dev", "test"))


def natural_verdicts(retriever: Any, items: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """The bottom line of our natural yes/no questions (``verdicts.jsonl``) against the verdict written from the
    record's conclusions, by split and kind: how many got one, how many got the written one ("unclear" written:
    the record does not answer the question as asked, so no bottom line is the right one), and how many got
    the opposite of a written "yes" or "no" (the error a clinician pays most for); and how many answer blocks
    open with the item's ``evidence`` sentence (the one its verdict was written from; either holding the other)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for item in items:
        answer = retriever.ask(item["question"], 5).answer
        said = answer.verdict or "unclear"
        first = " ".join(answer.sentences[0].text.split()) if answer.sentences else ""
        evidence = " ".join(item["evidence"].split())
        for kind in (item["kind"], "all"):
            row = out.setdefault(item["split"], {}).setdefault(kind, Counter())
            row["of"] += 1
            row["given"] += said != "unclear"
            row["right"] += said == item["verdict"]
            row["opposite"] += {said, item["verdict"]} == {"yes", "no"}
            row["evidence_first"] += len(first) >= 40 and (evidence in first or first in evidence)
    return {split: {kind: dict(row) for kind, row in kinds.items()} for split, kinds in out.items()}


def run_all(retriever: Any, real: list[str]) -> dict:
    """Every hand-labelled set, on the index that holds its records (the shared questions: ``shared_answers``)."""
    questions = load("questions.jsonl")
    cached = cache_questions(retriever, questions)
    return {
        "answers": answer_rate(cached),
        "conversations": conversations(retriever, load("conversations.jsonl")),
        "refusals": refusals(retriever, load("offtopic.jsonl"), real),
        "cases": cases(retriever, load("cases.jsonl")),
        "switches": cases(retriever, load("switches.jsonl")),
        "judged": labelled_judgements(retriever),
        "verdicts": natural_verdicts(retriever, load("verdicts.jsonl")),
        "comparisons": natural_verdicts(retriever, [{**c, "kind": c["form"]} for c in load("comparisons.jsonl")]),
    }


def _by_split(rows: list[dict[str, Any]]) -> str:
    """ "dev 8/8, test 5/8; missed: s12, s14, s15": how many rows of each half read right, and which did not."""
    halves = [f"{split} {sum(r['ok'] for r in rows if r['split'] == split)}/{sum(r['split'] == split for r in rows)}"
              for split in splits_of(rows)]  # fmt: skip
    return ", ".join(halves) + "; missed: " + (", ".join(r["id"] for r in rows if not r["ok"]) or "none")


def _follow_ups(rows: list[dict[str, Any]]) -> str:
    """ "read as follow-ups 12/12, answer holds the marked sentence 9/12": the follow-ups of switches.jsonl."""
    kept, held = sum(r["searched_with_context"] for r in rows), sum(r["ok"] for r in rows)
    return f"read as follow-ups {kept}/{len(rows)}, answer holds the marked sentence {held}/{len(rows)}"


def _ratio(n: int, of: int) -> str:
    return f"{n}/{of} = {n / of:.1%}" if of else "0/0"


def _judged_lines(result: dict[str, Any]) -> list[str]:
    """Hit relevance and the answer sentences' records, on the shared halves and on our own two halves."""
    halves = [("shared tune", result["shared"]["judged"]["tune"]), ("test", result["shared"]["judged"]["test"]),
              ("ours dev", result["judged"]["dev"]), ("test", result["judged"]["test"])]  # fmt: skip

    def line(name: str, key: str) -> str:
        return f"{name:<35}" + ", ".join(f"{half} {_ratio(t[key + ' gold'], t[key])}" for half, t in halves)

    return [line("hits labelled strong: gold record", "strong"), line("hits labelled weak: gold record", "weak"),
            line("answer sentences from gold record", "sentences")]  # fmt: skip


def verdict_shares(table: dict[str, dict[str, int]]) -> tuple[int, int, int]:
    """(questions, bottom lines given, right ones) of one half's confusion table; "unclear" is not given."""
    of = sum(sum(row.values()) for row in table.values())
    given = sum(n for row in table.values() for said, n in row.items() if said != "unclear")
    return of, given, sum(table[g][g] for g in table)


def _verdict_lines(verdicts: dict[str, dict[str, dict[str, int]]],
                   safety: dict[str, dict[str, dict[str, int]]]) -> list[str]:  # fmt: skip
    """The end-to-end bottom line against PubMedQA's, per half, and the held-out half's confusion table; then the
    same shares for the yes/no questions that ask whether something is safe (``reads_safe`` answers those)."""
    summary = []
    for half, table in verdicts.items():
        of, given, right = verdict_shares(table)
        summary.append(f"{half} {'(trained on)' if half == 'tune' else '(never tuned on)'}: given {_ratio(given, of)}, "
                       f"right on {_ratio(right, given)} of those, {right / of if of else 0:.1%} of all")  # fmt: skip
    test = verdicts["test"]
    rows = [f"    {g:<8}" + "".join(f"{test[g][said]:>9}" for said in SAID) for g in test]
    return ["verdict, end to end (shared)       " + "; ".join(summary),
            "  test half (rows: PubMedQA's verdict, columns: the bottom line given)",
            "    " + " " * 8 + "".join(f"{said:>9}" for said in SAID), *rows,
            "  asking whether it is safe         " + "; ".join(
                f"{half}: given {_ratio(verdict_shares(t)[1], verdict_shares(t)[0])}, right on "
                f"{_ratio(verdict_shares(t)[2], verdict_shares(t)[1])}" for half, t in safety.items())]  # fmt: skip


def _natural_verdict_lines(verdicts: dict[str, dict[str, dict[str, int]]],
                           title: str = "verdict, our natural questions (verdicts.jsonl; dev read while building, "
                                        "test and fresh batches never)") -> list[str]:  # fmt: skip
    """One line per split of ``natural_verdicts``: all, then by kind."""
    lines = []
    for split in (s for s in SPLITS if s in verdicts):
        kinds = verdicts[split]
        parts = [f"{kind} {row['right']}/{row['of']} right ({row['given']} given, {row['opposite']} opposite)"
                 for kind, row in sorted(kinds.items(), key=lambda kv: kv[0] != "all")]  # fmt: skip
        parts[0] += f", opening with the marked evidence {kinds['all'].get('evidence_first', 0)}/{kinds['all']['of']}"
        lines.append(f"  {split:<6} " + ", ".join(parts))
    return [title, *lines]


def report_lines(result: dict[str, Any]) -> list[str]:
    a, c, r, s = result["answers"], result["conversations"], result["refusals"], result["shared_first_sentence"]
    switches = result["switches"]

    def rate(d: dict[str, Any]) -> str:
        return f"{d['held']}/{d['of']} = {d['rate']:.1%}"

    def share(d: dict[str, Any]) -> str:
        return f"{d['n']}/{d['of']} = {d['rate']:.1%}" if d["of"] else "n/a"

    return [
        f"answer holds the marked sentence   all {rate(a['all'])}  (dev {rate(a['dev'])}, test {rate(a['test'])})",
        "  by kind: " + ", ".join(f"{k} {rate(a[k])}" for k in ("plain", "technical", "unstructured", "numeric")),
        f"  first sentence is a marked one   {a['all']['first']}/{a['all']['of']}",
        f"follow-ups: right record first     {share(c['follow_up_right_first'])}  (dev "
        f"{share(c['follow_up_right_first_dev'])}, test {share(c['follow_up_right_first_test'])}; "
        f"no cue word {share(c['follow_up_right_first_no_cue'])})",
        f"follow-ups: answer holds marked    {share(c['follow_up_answer_held'])}",
        f"topic switches = standalone hits   {share(c['switch_equals_standalone'])}",
        f"nothing relevant: off-topic refused {r['offtopic_refused']}/{r['offtopic']} = {r['offtopic_rate']:.1%}; "
        f"real questions refused {r['real_refused']}/{r['real']}",
        "  in-scope natural questions       "
        + ", ".join(f"{k} {v['refused']}/{v['of']} refused" for k, v in r["in_scope"].items())
        + "  (dev trained on, test and fresh never)",
        "out-of-scope refused               "
        + ", ".join(f"{k} {v['refused']}/{v['of']} = {v['refused'] / v['of']:.1%}"
                    for k, v in r["out_of_scope"].items())  # fmt: skip
        + "  (dev trained on, test and fresh never)",
        *(f"  {name:<32} " + ", ".join(f"{k} {v['refused']} refused, {v['uncertain']} uncertain, {v['plain']} plain"
                                      for k, v in r[key].items())  # fmt: skip
          for name, key in (("out-of-scope", "out_of_scope"), ("subjects never together", "near_together"))),
        "held-out cases (cases.jsonl)       "
        + ", ".join(f"{c['id']} {c['kind']} {'ok' if c['ok'] else 'MISSED'}" for c in result["cases"]),
        "switches sharing words (switches)  " + _by_split([r for r in switches if r["kind"] == "switch"]),
        *(f"  follow-ups in other words ({split})".ljust(36)
          + _follow_ups([r for r in switches if r["kind"] == "follow_up" and r["split"] == split])
          for split in splits_of([r for r in switches if r["kind"] == "follow_up"])),
        f"shared: first answer sentence from the gold record's Results/Conclusions "
        f"{s.get('from gold results/conclusions', 0)}/{s['questions']} = {s['rate']:.1%} "
        f"(from the gold record at all: {s.get('from gold', 0)})",
        *(_judged_lines(result) if "shared" in result else []),
        *(_verdict_lines(result["shared"]["verdict"], result["shared"]["safety"]) if "shared" in result else []),
        *(_natural_verdict_lines(result["verdicts"]) if "verdicts" in result else []),
        *(_natural_verdict_lines(result["comparisons"], "verdict, comparisons of two options (comparisons.jsonl, "
                                 "stops 35-36; dev read while building, test and fresh batches never)")
          if "comparisons" in result else []),  # fmt: skip
    ]


__all__ = ["run_all", "report_lines", "verdict_shares", "cache_questions", "answer_rate", "load", "Path"]
