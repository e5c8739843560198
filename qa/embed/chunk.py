"""Chunk: split abstracts into sentence-aligned passages that fit the embedding model.

Passages are measured in the model's own tokens (``tokenizers``, no torch), so
nothing is silently truncated by the encoder. A chunk never crosses a section
boundary, which keeps the section a hit reports honest, and the text that is
embedded carries the title and section label as context.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..records import Record

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class Chunk:
    """A passage of one abstract; ``start``/``end`` index into ``Record.abstract``."""

    pmid: str
    ordinal: int
    section: str | None
    start: int
    end: int
    text: str
    embed_text: str
    sentences: tuple[tuple[int, int], ...]  # abstract offsets of each sentence
    n_tokens: int  # of embed_text, special tokens included


@dataclass(frozen=True)
class ChunkSettings:
    """How abstracts are cut; stored in the manifest so a rebuild can reproduce it."""

    chunk_tokens: int = 128
    overlap_sentences: int = 1

    def __post_init__(self) -> None:
        if self.chunk_tokens < 16:
            raise ValueError("chunk_tokens must be at least 16")
        if self.overlap_sentences < 0:
            raise ValueError("overlap_sentences must be >= 0")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` (pysbd's rules know "e.g.", "p<0.05", "Fig. 2")."""
    if not text.strip():
        return []
    segmenter = _segmenter()
    spans: list[tuple[int, int]] = []
    pos = 0
    for sentence in segmenter.segment(text):
        piece = sentence.strip()
        if not piece:
            continue
        start = text.find(piece, pos)
        if start < 0:  # pysbd changed the text; fall back to the rest as one sentence
            rest = text[pos:].strip()
            if rest:
                start = text.index(rest, pos)
                spans.append((start, start + len(rest)))
            pos = len(text)
            break
        spans.append((start, start + len(piece)))
        pos = start + len(piece)
    tail = text[pos:].strip()
    if tail:
        start = text.index(tail, pos)
        spans.append((start, start + len(tail)))
    return spans


@functools.cache
def _segmenter() -> Any:
    """pysbd's Segmenter keeps no state between calls; build it once per process, not per abstract."""
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


@dataclass(frozen=True)
class ChunkerSpec:
    """A ``Chunker`` as plain data (the tokenizer's JSON, the limits), so that a worker process can build
    the very same one from ``tokenizers`` alone: no model, no torch."""

    tokenizer_json: str
    max_seq_length: int
    settings: ChunkSettings

    def build(self) -> Chunker:
        from tokenizers import Tokenizer

        return Chunker(Tokenizer.from_str(self.tokenizer_json), self.max_seq_length, self.settings)


class Chunker:
    """Packs whole sentences into chunks of at most ``chunk_tokens`` model tokens."""

    def __init__(self, tokenizer: Tokenizer, max_seq_length: int, settings: ChunkSettings | None = None) -> None:
        self.tokenizer = tokenizer
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.settings = settings or ChunkSettings()
        self.max_seq_length = max_seq_length
        self.budget = min(self.settings.chunk_tokens, max_seq_length)

    def spec(self) -> ChunkerSpec:
        """What a worker process needs to chunk exactly as this chunker does."""
        return ChunkerSpec(self.tokenizer.to_str(), self.max_seq_length, self.settings)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text costs the encoder, special tokens included."""
        if not texts:
            return []
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        return [len(e.ids) for e in encodings]

    @staticmethod
    def prefix(record: Record, label: str | None, with_title: bool = True) -> str:
        parts = []
        if record.title and with_title:
            parts.append(record.title)
        if label:
            parts.append(label.capitalize() + ":")
        return "\n".join(parts) + ("\n" if parts else "")

    def chunk(self, record: Record) -> list[Chunk]:
        abstract = record.abstract
        chunks: list[Chunk] = []
        for label, sec_start, sec_end in record.section_spans:
            prefix = self.prefix(record, label)
            overhead = self.count_tokens([prefix])[0]  # prefix plus [CLS] and [SEP]
            limit = self.budget
            if limit - overhead < 32:  # a long title: use the model's whole window rather than tiny chunks
                limit = self.max_seq_length
            if limit - overhead < 32:  # a title too long to repeat in every chunk
                prefix = self.prefix(record, label, with_title=False)
                overhead = self.count_tokens([prefix])[0]
            room = limit - overhead
            units = self._units(abstract, sec_start, sec_end, room)
            for group in self._pack(units, room):
                for fitted in self._fit(abstract, prefix, group, limit):
                    start, end = fitted[0][0], fitted[-1][1]
                    text = abstract[start:end]
                    chunks.append(
                        Chunk(
                            pmid=record.pmid,
                            ordinal=len(chunks),
                            section=label,
                            start=start,
                            end=end,
                            text=text,
                            embed_text=prefix + text,
                            sentences=tuple((s, e) for s, e, _ in fitted),
                            n_tokens=self.count_tokens([prefix + text])[0],
                        )
                    )
        return chunks

    def _units(self, abstract: str, sec_start: int, sec_end: int, room: int) -> list[tuple[int, int, int]]:
        """Sentences as ``(start, end, tokens)``; a sentence longer than ``room`` is cut at token boundaries."""
        section = abstract[sec_start:sec_end]
        spans = [(sec_start + s, sec_start + e) for s, e in split_sentences(section)]
        counts = self.count_tokens([abstract[s:e] for s, e in spans])
        units: list[tuple[int, int, int]] = []
        for (s, e), n in zip(spans, counts):
            body = n - 2
            if body <= room:
                units.append((s, e, body))
                continue
            units.extend(self._cut(abstract, s, e, room))
        return units

    def _cut(self, abstract: str, start: int, end: int, room: int) -> list[tuple[int, int, int]]:
        """Cut one overlong sentence into pieces of at most ``room`` tokens, only where the text has white space
        (never inside "1.17-2.67" or "CD4+"), and at the last clause break (after ";", "," or ":") of a piece
        when one falls in its second half, so that "95% CI, 0.57 to 0.73" stays whole where it can."""
        enc = self.tokenizer.encode(abstract[start:end], add_special_tokens=False)
        spans: list[list[int]] = []  # [start, end, tokens] per white-space-delimited token, sentence-relative
        for s, e in enc.offsets:
            if spans and not abstract[start + spans[-1][1] : start + s].strip() and spans[-1][1] == s:
                spans[-1][1] = e  # joined to the token before: no white space between them
                spans[-1][2] += 1
            else:
                spans.append([s, e, 1])
        pieces: list[tuple[int, int, int]] = []
        group: list[list[int]] = []  # the piece being filled

        def close(upto: int) -> None:
            pieces.append((start + group[0][0], start + group[upto - 1][1], sum(t[2] for t in group[:upto])))
            del group[:upto]

        for token in spans:
            if token[2] > room:  # one token longer than a chunk (a sequence, a URL): cut between its subwords
                if group:
                    close(len(group))
                pieces.extend(self._cut_tokens(abstract, start + token[0], start + token[1], max(1, room // 2)))
                continue
            if group and sum(t[2] for t in group) + token[2] > room:
                breaks = [i + 1 for i, t in enumerate(group) if abstract[start + t[1] - 1] in ";,:"]
                late = [b for b in breaks if b >= len(group) // 2 and b < len(group)]
                close(late[-1] if late else len(group))
                if group and sum(t[2] for t in group) + token[2] > room:
                    close(len(group))
            group.append(token)
        if group:
            close(len(group))
        return pieces

    def _cut_tokens(self, abstract: str, start: int, end: int, size: int) -> list[tuple[int, int, int]]:
        offsets = self.tokenizer.encode(abstract[start:end], add_special_tokens=False).offsets
        return [
            (start + offsets[i][0], start + offsets[min(i + size, len(offsets)) - 1][1], min(size, len(offsets) - i))
            for i in range(0, len(offsets), size)
        ]

    def _fit(
        self, abstract: str, prefix: str, group: list[tuple[int, int, int]], limit: int
    ) -> list[list[tuple[int, int, int]]]:
        """Check a packed group with the real tokenizer; split it (never drop text) if it overflows."""
        text = abstract[group[0][0] : group[-1][1]]
        if self.count_tokens([prefix + text])[0] <= limit:
            return [group]
        if len(group) > 1:
            half = len(group) // 2
            return self._fit(abstract, prefix, group[:half], limit) + self._fit(abstract, prefix, group[half:], limit)
        s, e, n = group[0]
        if n <= 1 or e - s <= 1:
            return [group]  # a single token cannot be cut further
        return [
            piece
            for unit in self._cut_tokens(abstract, s, e, max(1, n // 2))
            for piece in self._fit(abstract, prefix, [unit], limit)
        ]

    def _pack(self, units: list[tuple[int, int, int]], room: int) -> list[list[tuple[int, int, int]]]:
        groups: list[list[tuple[int, int, int]]] = []
        overlap = self.settings.overlap_sentences
        i = 0
        while i < len(units):
            group = [units[i]]
            used = units[i][2]
            j = i + 1
            while j < len(units) and used + units[j][2] <= room:
                group.append(units[j])
                used += units[j][2]
                j += 1
            groups.append(group)
            if j >= len(units):
                break
            # Step back to repeat the last sentences, but always move forward.
            i = max(j - overlap, i + 1) if overlap else j
        return groups


__all__ = ["Chunk", "ChunkSettings", "Chunker", "ChunkerSpec", "split_sentences"]
