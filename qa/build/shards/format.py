"""Shards: one source file parsed, chunked and embedded elsewhere, kept on disk until an index is made of them.

A distributed build (``qa build --engine ray``) turns each source file into one shard; ``qa index
from-shards`` then makes an ordinary index of them. A shard is a folder::

    <file stem>-<16 hex>/      sha256 of the file's bytes and the build settings: the same input, same name
        events.jsonl           the file's records and deletions, in file order ({"record": ...} / {"deleted": [...]})
        passages.jsonl         one line per record the file leaves standing, sorted by PMID: its passages
        vectors.npy            float32 passage vectors, in passages.jsonl order
        sentences.npy          float16 sentence vectors (``sentence_rows`` of each record, in the same order)
        shard.json             written last: settings, counts and the SHA-256 of every file above

It is written in a ``.tmp-`` folder and renamed into place complete, so a shard either exists whole or
not at all; a folder without ``shard.json`` is an unfinished one and is made again. Nothing is pickled:
JSON lines and ``.npy`` arrays read with ``allow_pickle=False``. Beside the shards, ``models/`` holds the
int8 encoder they were embedded with and ``shards.json`` lists the shards of the last complete build in
source order, which is the order an index is made in.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...checksums import file_facts, file_sha256
from ...embed import Chunk, is_exported
from ...embed.onnx import encoder_checksums, encoder_dir_name
from ...errors import ShardError
from ...records import MAX_LABEL_CHARS, Deletion, Record, load_json, normalize_pmid, record_from_dict
from ...store import fault_point, fsync_dir, fsync_file

SHARD_FORMAT = 2  # 2: records carry their citation (authors, issue, pages, publication types)
SHARD_MANIFEST = "shard.json"
EVENTS = "events.jsonl"
PASSAGE_LIST = "passages.jsonl"  # (an index's passages are SQLite: store.layout.PASSAGES)
PASSAGE_VECTORS = "vectors.npy"
SENTENCE_VECTORS = "sentences.npy"
DATA_FILES = (EVENTS, PASSAGE_LIST, PASSAGE_VECTORS, SENTENCE_VECTORS)
MAX_NPY_HEADER = 1_000  # bytes of a .npy header: a real one is ~128
SHARD_SET = "shards.json"
MODELS = "models"
TMP_PREFIX = ".tmp-"
VECTOR_DTYPE = np.float32  # what a local build stores for passages
SENTENCE_VECTOR_DTYPE = np.float16  # what the index stores for sentences anyway

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SHARD_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}-[0-9a-f]{16}")


@dataclass(frozen=True)
class ShardSettings:
    """What decides a shard's vectors besides the file: part of its name, so a change makes new shards."""

    model: str
    backend: str
    chunk_tokens: int
    overlap_sentences: int
    precision: str | None = None  # torch: as asked (None: fp16 on CUDA, else fp32)
    encoder_sha256: str | None = None  # exported backends: model.onnx's SHA-256, a key of the shard's name (format 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ShardSettings:
        try:
            settings = cls(**data)
        except TypeError:
            raise ShardError(f"{where}: unreadable shard settings; make the shards again") from None
        if not (isinstance(settings.model, str) and isinstance(settings.backend, str)):
            raise ShardError(f"{where}: unreadable shard settings; make the shards again")
        return settings


def shard_name(source: Path, source_sha256: str, settings: ShardSettings) -> str:
    """``<file stem>-<16 hex>``: the same file with the same settings always gets the same name."""
    stem = _UNSAFE.sub("-", source.name.split(".")[0]).strip("-")[:80] or "source"
    key = json.dumps({"format": SHARD_FORMAT, "source": source_sha256, "settings": settings.to_dict()}, sort_keys=True)
    return f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


# ------------------------------------------------------------------ manifest


@dataclass
class ShardManifest:
    """What one shard holds and how it was made; the last file written."""

    name: str
    source: str  # the file's name
    source_sha256: str
    source_bytes: int
    settings: dict[str, Any]
    dimension: int
    max_seq_length: int
    records_read: int = 0  # records with an abstract plus skipped ones, as a local build counts them
    records: int = 0  # records left standing (with passages)
    skipped: dict[str, int] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)  # with skip_bad: what could not be read
    passages: int = 0
    sentences: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # read, chunk, embed (passages), sentences
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: int = SHARD_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> ShardManifest:
        where = f"shard {path.parent.name}"
        redo = "delete the shard folder to make it again"
        try:
            data = load_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ShardError(f"{where}: unreadable {SHARD_MANIFEST}; {redo}") from None
        if not isinstance(data, dict) or data.get("format") != SHARD_FORMAT:
            raise ShardError(f"{where}: shard format {data.get('format') if isinstance(data, dict) else None!r} "
                             f"is not {SHARD_FORMAT}; make the shards again")  # fmt: skip
        try:
            manifest = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except TypeError:
            raise ShardError(f"{where}: incomplete {SHARD_MANIFEST}; {redo}") from None
        counts = (manifest.dimension, manifest.records_read, manifest.records, manifest.passages, manifest.sentences,
                  manifest.source_bytes, manifest.max_seq_length)  # fmt: skip
        files = manifest.files
        if (
            not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts)
            or not all(isinstance(v, str) for v in (manifest.name, manifest.source, manifest.source_sha256))
            or not isinstance(files, dict)
            or set(files) != set(DATA_FILES)
            or not all(isinstance(f, dict) and isinstance(f.get("bytes"), int) and isinstance(f.get("sha256"), str)
                       for f in files.values())
            or not isinstance(manifest.settings, dict)
            or not isinstance(manifest.skipped, dict)
            or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                       for k, v in manifest.skipped.items())
            or not isinstance(manifest.bad, list)
            or not all(isinstance(b, str) for b in manifest.bad)
            or not isinstance(manifest.seconds, dict)
        ):  # fmt: skip
            raise ShardError(f"{where}: invalid {SHARD_MANIFEST} (a field of the wrong type or range); {redo}")
        return manifest


# ------------------------------------------------------------------ writing


class ShardWriter:
    """Fills one shard in a ``.tmp-`` folder beside its final place; ``finish`` renames it there complete."""

    def __init__(self, directory: Path, name: str) -> None:
        self.final = directory / name
        self.dir = directory / f"{TMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
        self.dir.mkdir(parents=True)

    def path(self, name: str) -> Path:
        return self.dir / name

    def arrays(self, passages: int, sentences: int, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        """The two ``.npy`` files, memory-mapped for writing row by row."""
        vectors = np.lib.format.open_memmap(self.path(PASSAGE_VECTORS), "w+", VECTOR_DTYPE, (passages, dimension))
        sentence_vectors = np.lib.format.open_memmap(
            self.path(SENTENCE_VECTORS), "w+", SENTENCE_VECTOR_DTYPE, (sentences, dimension)
        )
        return vectors, sentence_vectors

    def finish(self, manifest: ShardManifest) -> ShardManifest:
        """Checksum, fsync and rename into place; if a twin finished first (a retried task), keep that one."""
        manifest.files = {name: file_facts(self.path(name)) for name in DATA_FILES}
        self.path(SHARD_MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        for name in (*DATA_FILES, SHARD_MANIFEST):
            fsync_file(self.path(name))
        fault_point("shard-written")
        try:
            os.rename(self.dir, self.final)
        except OSError:
            if not (self.final / SHARD_MANIFEST).is_file():
                raise
            self.abort()
            return Shard(self.final).manifest
        fsync_dir(self.final.parent)
        return manifest

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def chunk_to_dict(chunk: Chunk) -> dict[str, Any]:
    """A passage as stored in a shard; its text is the tail of ``embed_text``."""
    return {"ordinal": chunk.ordinal, "section": chunk.section, "start": chunk.start, "end": chunk.end,
            "embed_text": chunk.embed_text, "sentences": [list(s) for s in chunk.sentences],
            "n_tokens": chunk.n_tokens}  # fmt: skip


MAX_CHUNK_TOKENS = 10_000  # far above any model's window


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _chunk_problem(c: Any, ordinal: int, abstract_chars: int) -> str | None:
    """Why a stored passage cannot be one of its record's passages (type, range or order), or None."""
    if not isinstance(c, dict) or set(c) != {"ordinal", "section", "start", "end", "embed_text", "sentences",
                                             "n_tokens"}:  # fmt: skip
        return "not a passage object"
    if not _whole(c["ordinal"]) or c["ordinal"] != ordinal:
        return f"ordinal {str(c['ordinal'])[:20]!r}, expected {ordinal}"
    if c["section"] is not None and (not isinstance(c["section"], str) or len(c["section"]) > MAX_LABEL_CHARS):
        return "section is not a label"
    start, end = c["start"], c["end"]
    if not (_whole(start) and _whole(end) and 0 <= start < end <= abstract_chars):
        return f"offsets {str(start)[:20]}-{str(end)[:20]} outside its abstract of {abstract_chars} characters"
    if not isinstance(c["embed_text"], str):
        return "embed_text is not text"
    sentences = c["sentences"]
    if not isinstance(sentences, list) or not all(
        isinstance(p, list) and len(p) == 2 and _whole(p[0]) and _whole(p[1]) and start <= p[0] < p[1] <= end
        for p in sentences
    ):
        return "sentences are not offset pairs inside the passage"
    if not _whole(c["n_tokens"]) or not 0 < c["n_tokens"] <= MAX_CHUNK_TOKENS:
        return f"n_tokens {str(c['n_tokens'])[:20]!r}"
    return None


def is_complete(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and (folder / SHARD_MANIFEST).is_file()


def leftovers(directory: Path) -> list[Path]:
    """Unfinished shards: ``.tmp-`` folders, and shard folders without their ``shard.json``."""
    if not directory.is_dir():
        return []
    return sorted(
        child
        for child in directory.iterdir()
        if child.is_dir()
        and not child.is_symlink()
        and (
            child.name.startswith(TMP_PREFIX)
            or (_SHARD_NAME.fullmatch(child.name) is not None and not (child / SHARD_MANIFEST).is_file())
        )
    )


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class ShardEntry:
    """The passages of one record in one shard, with where their vectors are."""

    shard: Shard
    pmid: str
    record_hash: str
    chunks: tuple[dict[str, Any], ...]
    row: int  # first passage vector
    sentence_row: int  # first sentence vector
    sentences: int

    def chunk_objects(self, record: Record) -> list[Chunk]:
        """The passages as ``Chunk``s of ``record``, checked against its abstract."""
        out = []
        abstract = record.abstract
        for c in self.chunks:
            problem = _chunk_problem(c, len(out), len(abstract))
            if problem is None and not c["embed_text"].endswith(abstract[c["start"] : c["end"]]):
                problem = "its text is not the record's at its offsets"
            if problem is not None:
                raise ShardError(f"shard {self.shard.name}: {PASSAGE_LIST}: passage {len(out)} of PMID {self.pmid}: "
                                 f"{problem}; delete the shard folder to make it again")  # fmt: skip
            start, end = c["start"], c["end"]
            out.append(Chunk(pmid=self.pmid, ordinal=c["ordinal"], section=c["section"], start=start, end=end,
                             text=abstract[start:end], embed_text=c["embed_text"],
                             sentences=tuple((a, b) for a, b in c["sentences"]), n_tokens=c["n_tokens"]))  # fmt: skip
        return out

    def vectors(self) -> np.ndarray:
        return np.array(self.shard.vectors[self.row : self.row + len(self.chunks)], dtype=np.float32)

    def sentence_vectors(self) -> np.ndarray:
        return np.array(self.shard.sentence_vectors[self.sentence_row : self.sentence_row + self.sentences])


class Shard:
    """A complete shard, opened for reading; ``verify`` checks every file against ``shard.json``."""

    def __init__(self, folder: Path) -> None:
        if not is_complete(folder):
            raise ShardError(f"shard {folder.name}: unfinished (no {SHARD_MANIFEST}); run the build again to make it")
        self.dir = folder
        self.name = folder.name
        self.manifest = ShardManifest.from_file(folder / SHARD_MANIFEST)
        if self.manifest.name != self.name:
            raise ShardError(f"shard {self.name}: its {SHARD_MANIFEST} names {self.manifest.name!r}; refused")
        self._vectors: np.ndarray | None = None
        self._sentence_vectors: np.ndarray | None = None

    def verify(self) -> None:
        """Size and SHA-256 of every file against the manifest: a damaged shard is refused, never indexed."""
        for name in DATA_FILES:
            path = self.dir / name
            expected = self.manifest.files.get(name) or {}
            try:
                st = path.lstat()  # never followed: a link to /dev/zero or a FIFO would be read forever
            except OSError:
                st = None
            if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != expected.get("bytes"):
                raise ShardError(
                    f"shard {self.name}: {name} is missing, not a regular file, or not the size its {SHARD_MANIFEST} "
                    "gives; delete the shard folder to make it again"
                )
            try:
                facts = file_facts(path)
            except OSError:
                facts = None
            if facts != self.manifest.files.get(name):
                raise ShardError(
                    f"shard {self.name}: {name} does not match the checksum in its {SHARD_MANIFEST} "
                    "(damaged or edited); delete the shard folder to make it again"
                )

    def _array(self, name: str, dtype: Any, rows: int) -> np.ndarray:
        path = self.dir / name
        try:  # the header first, within a bound: one claiming a huge shape once ended in tokenize.TokenError
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, found = read(fh, max_header_size=MAX_NPY_HEADER)
        except Exception as exc:  # numpy raises ValueError, SyntaxError, TokenError... one line is what a user needs
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ShardError(f"shard {self.name}: unreadable {name} header ({first[:100]})") from None
        if found != dtype or tuple(shape) != (rows, self.manifest.dimension) or fortran:
            raise ShardError(f"shard {self.name}: {name} holds {found} {tuple(shape)}, not {rows} vectors")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ShardError(f"shard {self.name}: unreadable {name} ({str(exc)[:80]})") from None
        if array.dtype != dtype or array.shape != (rows, self.manifest.dimension):
            raise ShardError(f"shard {self.name}: {name} holds {array.dtype} {array.shape}, not {rows} vectors")
        return array

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            self._vectors = self._array(PASSAGE_VECTORS, VECTOR_DTYPE, self.manifest.passages)
        return self._vectors

    @property
    def sentence_vectors(self) -> np.ndarray:
        if self._sentence_vectors is None:
            self._sentence_vectors = self._array(SENTENCE_VECTORS, SENTENCE_VECTOR_DTYPE, self.manifest.sentences)
        return self._sentence_vectors

    def events(self) -> Iterator[Record | Deletion]:
        """The file's records and deletions, in file order."""
        for n, obj in self._lines(EVENTS):
            if isinstance(obj, dict) and "record" in obj and isinstance(obj["record"], dict):
                record = record_from_dict(obj["record"], f"shard {self.name}: {EVENTS} line {n}")
                if not isinstance(record, Record):
                    raise ShardError(f"shard {self.name}: {EVENTS} line {n} holds a record without an abstract")
                yield record
            elif isinstance(obj, dict) and isinstance(obj.get("deleted"), list):
                pmids = [normalize_pmid(p) if isinstance(p, str) else None for p in obj["deleted"]]
                if None in pmids:
                    raise ShardError(f"shard {self.name}: {EVENTS} line {n} deletes something that is not a PMID")
                yield Deletion(tuple(p for p in pmids if p))
            else:
                raise ShardError(f"shard {self.name}: {EVENTS} line {n} is neither a record nor a deletion")

    def entries(self) -> Iterator[ShardEntry]:
        """One entry per standing record, in PMID order."""
        row = sentence_row = 0
        last = ""
        for n, obj in self._lines(PASSAGE_LIST):
            try:
                pmid, digest, chunks, sentences = obj["pmid"], obj["hash"], obj["chunks"], obj["sentences"]
                ok = (isinstance(pmid, str) and normalize_pmid(pmid) == pmid and isinstance(chunks, list)
                      and isinstance(digest, str) and _whole(sentences) and sentences >= 0 and pmid > last)  # fmt: skip
            except (TypeError, KeyError):
                ok = False
            if not ok:
                raise ShardError(f"shard {self.name}: {PASSAGE_LIST} line {n} is not a passage entry in PMID order")
            yield ShardEntry(self, pmid, str(digest), tuple(chunks), row, sentence_row, sentences)
            row += len(chunks)
            sentence_row += sentences
            last = pmid
        if (row, sentence_row) != (self.manifest.passages, self.manifest.sentences):
            raise ShardError(
                f"shard {self.name}: {PASSAGE_LIST} lists {row} passages and {sentence_row} sentences, "
                f"its manifest {self.manifest.passages} and {self.manifest.sentences}"
            )

    def _lines(self, name: str) -> Iterator[tuple[int, Any]]:
        with open(self.dir / name, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                try:
                    yield n, load_json(raw.decode("utf-8"))
                except ValueError as exc:  # UnicodeDecodeError too: invalid UTF-8
                    problem = str(exc)[:80]
                    raise ShardError(f"shard {self.name}: {name} line {n} is not usable JSON ({problem})") from None


# ------------------------------------------------------------------ the set


@dataclass(frozen=True)
class SetEntry:
    name: str
    source: str


class ShardSet:
    """The shards of one build, in source order, as ``shards.json`` lists them (all verified on opening)."""

    def __init__(self, directory: Path, settings: ShardSettings, shards: list[Shard], sources: list[str],
                 encoder_files: dict[str, str]) -> None:  # fmt: skip
        self.dir = directory
        self.settings = settings
        self.shards = shards  # in source order; a file given twice appears twice
        self.sources = sources
        self.encoder_files = encoder_files

    @classmethod
    def open(cls, directory: str | Path, *, verify: bool = True) -> ShardSet:
        directory = Path(directory)
        listing = directory / SHARD_SET
        if not directory.is_dir():
            raise ShardError(f"no shards at {directory}: run `qa build SOURCES --engine ray --shards {directory}`")
        if not listing.is_file():
            raise ShardError(f"{directory}: no {SHARD_SET} (no complete build of these shards); run the build again")
        try:
            data = load_json(listing.read_text(encoding="utf-8"))
            entries = [SetEntry(str(e["name"]), str(e["source"])) for e in data["shards"]]
            encoder_files = {str(k): str(v) for k, v in (data.get("encoder_files") or {}).items()}
        except (OSError, ValueError, TypeError, KeyError):
            raise ShardError(f"{listing}: unreadable; run the build again") from None
        if data.get("format") != SHARD_FORMAT or not entries:
            raise ShardError(f"{listing}: not a shard list of format {SHARD_FORMAT}; run the build again")
        settings = ShardSettings.from_dict(data.get("settings"), str(listing))
        opened: dict[str, Shard] = {}
        for entry in entries:
            if entry.name not in opened:
                if not _SHARD_NAME.fullmatch(entry.name):
                    raise ShardError(f"{listing}: {entry.name!r} is not a shard name; refused")
                shard = Shard(directory / entry.name)
                if ShardSettings.from_dict(shard.manifest.settings, f"shard {shard.name}") != settings:
                    raise ShardError(f"shard {shard.name}: made with other settings than {SHARD_SET} lists")
                if verify:
                    shard.verify()
                opened[entry.name] = shard
        dimensions = {s.manifest.dimension for s in opened.values()}
        if len(dimensions) != 1:
            raise ShardError(f"{directory}: shards of different vector dimensions {sorted(dimensions)}")
        shard_set = cls(directory, settings, [opened[e.name] for e in entries], [e.source for e in entries],
                        encoder_files)  # fmt: skip
        if is_exported(settings.backend):
            shard_set.check_encoder()
        return shard_set

    @property
    def dimension(self) -> int:
        return self.shards[0].manifest.dimension

    @property
    def encoder_dir(self) -> Path:
        return self.dir / MODELS / encoder_dir_name(self.settings.model)

    def check_encoder(self) -> None:
        """The int8 encoder beside the shards is the one they were embedded with, file for file."""
        found = encoder_checksums(self.encoder_dir)
        if not self.encoder_files or found != self.encoder_files:
            raise ShardError(
                f"{self.encoder_dir}: missing, or not the encoder the shards were made with; make the shards again"
            )

    def unique(self) -> list[Shard]:
        """Each shard once, at its last place: a file given twice counts where it was given last."""
        last = {s.name: i for i, s in enumerate(self.shards)}
        return [s for i, s in enumerate(self.shards) if last[s.name] == i]

    def merged(self) -> Iterator[ShardEntry]:
        """Every standing record's entry in PMID order; of a PMID in several shards, the last shard's.

        Every shard is open at once: its passage list, and its two arrays (each memory map holds a file
        descriptor), so the limit on open files is raised for a set of hundreds of shards.
        """
        unique = self.unique()
        _allow_open_files(3 * len(unique) + 256)
        streams = [shard.entries() for shard in unique]
        current: ShardEntry | None = None
        for entry in heapq.merge(*streams, key=lambda e: e.pmid):  # stable: equal PMIDs come in shard order
            if current is not None and entry.pmid != current.pmid:
                yield current
            current = entry
        if current is not None:
            yield current

    def entries_for(self, pmids: Sequence[str]) -> Iterator[ShardEntry]:
        """The entries of ``pmids`` (ascending), in that order."""
        stream = self.merged()
        entry = next(stream, None)
        for pmid in pmids:
            while entry is not None and entry.pmid < pmid:
                entry = next(stream, None)
            if entry is None or entry.pmid != pmid:
                raise ShardError(f"{self.dir}: no shard holds the passages of PMID {pmid}; make the shards again")
            yield entry


def _allow_open_files(needed: int) -> None:
    """Raise this process's soft limit on open files to ``needed`` (up to the hard limit), or say why not."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ShardError(f"reading the shards needs about {needed} open files, the limit is {hard} (raise ulimit -n)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def write_set(directory: Path, settings: ShardSettings, entries: Sequence[SetEntry], encoder_dir: Path | None) -> None:
    """Replace ``shards.json`` atomically: the shards of the build that just completed, in source order."""
    data = {
        "format": SHARD_FORMAT,
        "settings": settings.to_dict(),
        "encoder_files": encoder_checksums(encoder_dir) if encoder_dir is not None else {},
        "shards": [{"name": e.name, "source": e.source} for e in entries],
    }
    tmp = directory / f".{SHARD_SET}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    fsync_file(tmp)
    os.replace(tmp, directory / SHARD_SET)
    fsync_dir(directory)


__all__ = [
    "ShardSettings",
    "ShardManifest",
    "ShardWriter",
    "Shard",
    "ShardEntry",
    "ShardSet",
    "SetEntry",
    "shard_name",
    "file_sha256",
    "chunk_to_dict",
    "is_complete",
    "leftovers",
    "write_set",
    "SHARD_SET",
    "MODELS",
]
