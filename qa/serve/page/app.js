// The chat page: sends each question to POST /ask and draws the cited answer and its passages.
// Every piece of text from the index goes in through textContent, never as HTML: abstracts are
// data, not markup.
"use strict";

(function () {
  const form = document.getElementById("ask");
  const question = document.getElementById("question");
  const send = document.getElementById("send");
  const newTopic = document.getElementById("new-topic");
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const about = document.getElementById("about");
  const clear = document.getElementById("clear");
  const options = document.getElementById("options");
  let context = null; // the last answer's `context`: sent as `previous` so a follow-up keeps the thread

  // The conversation survives a reload: kept in this browser's storage (never sent anywhere), at most
  // MAX_SAVED turns, and drawn again the way it was first drawn.
  const STORE = "pubmed-qa-conversation";
  const MAX_SAVED = 30;
  let saved = { context: null, turns: [] };

  function save() {
    try {
      saved.context = context;
      saved.turns = saved.turns.slice(-MAX_SAVED);
      window.localStorage.setItem(STORE, JSON.stringify(saved));
    } catch (e) { /* storage full or disabled: the page still works, it just forgets */ }
  }

  function restore() {
    try {
      const text = window.localStorage.getItem(STORE);
      if (!text) return;
      const data = JSON.parse(text);
      if (!data || !Array.isArray(data.turns)) return;
      data.turns.forEach(function (t) {
        if (t && t.divider) {
          log.append(el("p", "divider", "New topic"));
        } else if (t && typeof t.question === "string" && t.data && Array.isArray(t.data.hits)) {
          const turn = el("article", "turn");
          turn.append(el("p", "you", t.question));
          drawAnswer(turn, t.data);
          turn.dataset.done = "true";
          turn.dataset.restored = "true";
          log.append(turn);
        }
      });
      saved = { context: data.context || null, turns: data.turns.slice(-MAX_SAVED) };
      context = saved.context;
      if (saved.turns.length) status.textContent = "Your earlier questions, kept in this browser.";
    } catch (e) {
      saved = { context: null, turns: [] };
    }
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function pubmedLink(pmid, url, label) {
    const a = el("a", null, label);
    a.href = url || "https://pubmed.ncbi.nlm.nih.gov/" + encodeURIComponent(pmid) + "/";
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.dataset.pmid = pmid;
    return a;
  }

  function yearValue(input) {
    const text = input.value.trim();
    return text === "" ? null : Number(text);
  }

  function request() {
    const body = {
      question: question.value,
      k: Number(document.getElementById("k").value),
      mode: document.getElementById("mode").value,
    };
    const filters = {};
    const from = yearValue(document.getElementById("year-from"));
    const to = yearValue(document.getElementById("year-to"));
    if (from !== null) filters.year_from = from;
    if (to !== null) filters.year_to = to;
    if (Object.keys(filters).length) body.filters = filters;
    if (context) body.previous = context;
    return body;
  }

  const VERDICTS = {
    yes: "Yes, in this collection:",
    no: "No, in this collection:",
    mixed: "Mixed: the records that answer disagree, or are uncertain:",
    unclear: "No clear yes or no: read the findings below before relying on them.",
  };

  function drawAnswer(turn, data) {
    const sentences = data.answer.sentences;
    if (sentences.length) {
      const p = el("p", "answer");
      p.setAttribute("aria-label", "Answer");
      if (data.answer.verdict && VERDICTS[data.answer.verdict]) {
        p.append(el("strong", "verdict", VERDICTS[data.answer.verdict]), " ");
      }
      sentences.forEach(function (s, i) {
        if (i) p.append(" ");
        p.append(s.text + " ");
        const cite = el("span", "cite");
        cite.append("[", pubmedLink(s.pmid, null, s.pmid), "]");
        p.append(cite);
      });
      turn.append(p);
      const cited = citedPmids(data);
      const exporter = el("button", "export-cited", "Export cited (RIS)");
      exporter.type = "button";
      exporter.setAttribute("aria-label", "Export the " + cited.length + " cited records as RIS, for reference managers");
      exporter.addEventListener("click", function () { exportCited(cited, exporter); });
      turn.append(exporter);
    }
    if (data.note) turn.append(el("p", "note", data.note));
    if (data.query && data.query !== data.question) turn.append(el("p", "note", "Searched as a follow-up: " + data.query));
    if (!data.hits.length) return;
    const strong = data.hits.filter(function (hit) { return hit.relevance_label !== "weak"; });
    const weak = data.hits.filter(function (hit) { return hit.relevance_label === "weak"; });
    if (strong.length) turn.append(passageList(strong, "Passages", "passages"));
    if (weak.length) {
      turn.append(el("p", "less-related", "Less related: the collection's closest, not judged to answer the question"));
      turn.append(passageList(weak, "Less related passages", "passages weak"));
    }
  }

  function passageList(hits, label, className) {
    const list = el("ol", className);
    list.setAttribute("aria-label", label);
    list.start = hits[0].rank;
    hits.forEach(function (hit) {
      const li = el("li");
      li.value = hit.rank;
      li.append(pubmedLink(hit.pmid, hit.url, hit.title || "PMID " + hit.pmid));
      li.firstChild.classList.add("title");
      const relevance = hit.relevance === null || hit.relevance === undefined ? null : "relevance " + hit.relevance.toFixed(2);
      const journal = (hit.citation && hit.citation.journal_iso) || hit.journal;
      const meta = [journal, hit.year, hit.study_type, hit.section, "PMID " + hit.pmid, relevance].filter(Boolean).join(" · ");
      li.append(el("div", "meta", meta));
      const authors = hit.authors || [];
      if (authors.length) {
        li.append(el("div", "authors", authors.slice(0, 3).join(", ") + (authors.length > 3 ? ", et al." : "")));
      }
      const text = el("p", "text");
      const best = hit.best_sentence;
      const at = best && hit.relevance_label !== "weak" ? hit.text.indexOf(best) : -1;
      if (at >= 0) {
        text.append(hit.text.slice(0, at), el("mark", null, best), hit.text.slice(at + best.length));
      } else {
        text.textContent = hit.text;
      }
      li.append(text);
      const copy = el("button", "copy-citation", "Copy citation");
      copy.type = "button";
      copy.setAttribute("aria-label", "Copy the citation of PMID " + hit.pmid);
      copy.addEventListener("click", function () { copyCitation(hit.pmid, copy); });
      li.append(copy);
      list.append(li);
    });
    return list;
  }

  async function citation(pmid, format) {
    const reply = await fetch("/records/" + encodeURIComponent(pmid) + "/cite?style=vancouver&format=" + format);
    const text = await reply.text();
    if (!reply.ok) {
      let message = "the server answered " + reply.status;
      try { message = JSON.parse(text).message || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return text;
  }

  async function copyCitation(pmid, button) {
    try {
      const text = (await citation(pmid, "text")).replace(/^1\. /, "").trim();
      await navigator.clipboard.writeText(text);
      button.dataset.copied = text;
      status.textContent = "Copied the citation of PMID " + pmid + ".";
    } catch (error) {
      status.textContent = "Could not copy the citation: " + error.message;
    }
  }

  // The records an answer cites, for its export: those of its sentences, then the other strong hits (never a weak one).
  function citedPmids(data) {
    const pmids = data.answer.sentences.map(function (s) { return s.pmid; });
    data.hits.forEach(function (hit) { if (hit.relevance_label !== "weak") pmids.push(hit.pmid); });
    return pmids.filter(function (p, i) { return pmids.indexOf(p) === i; });
  }

  async function exportCited(pmids, button) {
    try {
      const files = [];
      for (const pmid of pmids) files.push(await citation(pmid, "ris"));
      const blob = new Blob([files.join("")], { type: "application/x-research-info-systems" });
      const link = el("a");
      link.href = URL.createObjectURL(blob);
      link.download = "cited.ris";
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
      status.textContent = "Exported " + pmids.length + " cited record" + (pmids.length === 1 ? "" : "s") + " as RIS.";
      button.dataset.exported = String(pmids.length);
    } catch (error) {
      status.textContent = "Could not export: " + error.message;
    }
  }

  async function ask(event) {
    event.preventDefault();
    if (!question.value.trim()) {
      status.textContent = "Type a question first.";
      question.focus();
      return;
    }
    const body = request();
    const turn = el("article", "turn");
    turn.append(el("p", "you", body.question));
    log.append(turn);
    send.disabled = true;
    status.textContent = "Searching…";
    try {
      const reply = await fetch("/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const data = await reply.json();
      if (!reply.ok) throw new Error(data.message || "the server answered " + reply.status);
      drawAnswer(turn, data);
      context = data.context;
      saved.turns.push({ question: body.question, data: data });
      save();
      question.value = "";
      status.textContent = data.hits.length ? "Answered from " + data.hits.length + " passages." : "Nothing relevant found.";
      turn.dataset.done = "true";
    } catch (error) {
      turn.append(el("p", "error", "Error: " + error.message));
      turn.dataset.done = "error";
      status.textContent = "";
    } finally {
      send.disabled = false;
      question.focus();
      turn.scrollIntoView({ block: "start" });
    }
  }

  form.addEventListener("submit", ask);
  question.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  clear.addEventListener("click", function () {
    context = null;
    saved = { context: null, turns: [] };
    save();
    log.replaceChildren();
    status.textContent = "Conversation cleared from this page and this browser.";
    question.focus();
  });
  if (window.matchMedia && window.matchMedia("(min-width: 600px)").matches) options.open = true;
  newTopic.addEventListener("click", function () {
    context = null;
    saved.turns.push({ divider: true });
    save();
    log.append(el("p", "divider", "New topic"));
    status.textContent = "New topic: the next question starts fresh.";
    question.focus();
  });

  fetch("/info")
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (info) {
      if (info) about.textContent = info.records.toLocaleString() + " abstracts, " + info.passages.toLocaleString() +
        " passages. Every answer is quoted from them and cited by PMID.";
    })
    .catch(function () {});
  restore();
  question.focus();
})();
