"""``cockpit data prepare``: raw documents -> deduplicated, filtered, tokenized, packed token shards.

    manifest = prepare(["corpus.jsonl"], "data/tok", "data/shards", PrepareSettings(seq_len=512))

One streaming pass over the inputs, in order, a batch of documents at a time:

1. read and validate every record (``engine.data.formats``: a JSONL line, or a text document, a
   line, paragraph or whole file by ``text_unit``; a bad one stops the run with its ``file:line``
   unless ``skip_invalid``);
2. signals of the batch (``engine.data.signals``: words, symbols, repetition, exact keys, MinHash);
3. per document, in order: exact duplicate? fails a quality rule (``engine.data.quality``)? near
   duplicate of a kept document (``engine.data.dedup``, MinHash LSH)? -- the first reason drops it;
4. a kept document is held out for validation when its content's draw is below ``val_fraction``;
5. the batch's training documents are tokenized together (``tokenizers``' ``encode_batch``, which
   uses every core), each followed by the end-of-text token, and appended to the current shard;
   a shard closes at the first document boundary past ``shard_tokens`` tokens.

Fine-tuning records (instruct, chat, tool, reasoning, kd) are rendered through the ChatML
template with a loss mask over everything but what the assistant says (``engine.data.render``); the
quality rules are for documents and do not apply to them. When any input is such a format, every
shard has a uint8 mask beside it (1: the token is learnt; all 1 for plain documents) and the
engine trains only on the learnt tokens.

The engine cuts the stream into ``seq_len`` windows (packing: documents run across windows,
separated by end-of-text). Output, tied to the tokenizer's sha256 like ``engine.data.shards``::

    train_000.bin [train_000.mask.bin] ...  val_000.bin ...  manifest.json (written last: complete)

Interrupted and re-run with the same inputs and settings, it keeps the shards that were complete
(``prepare_state.json`` lists them, with the input position where each ended), replays the
documents before that point through steps 1-4 only (so deduplication decides exactly alike;
held-out documents are tokenized again), and goes on writing: the shards are byte-identical to an
uninterrupted run's. Shard files are written under temporary names and renamed when complete, so
nothing partial ever looks complete. Torch-free.

Why this module is over 400 lines: it is one pipeline (resume state, the pass over the inputs, the
split, the manifest) that reads best in one place; its parts with a job of their own live beside it
(``sources``, ``shard_writer``, ``signals``, ``quality``, ``dedup``, ``manifest``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine.data.dedup import EXACT, NEAR, Deduplicator
from engine.data.lines import MAX_LINE_BYTES
from engine.data.manifest import (
    MANIFEST,
    ShardEntry,
    TokenizerRef,
    atomic_write_json,
    file_problems,
    inspect_shards,
    new_manifest,
    write_manifest,
)
from engine.data.quality import REASONS, QualityRules
from engine.data.render import CHAT_FORMATS, encode_segments_batch, markers_are_special, render_record
from engine.data.shard_writer import ShardWriter, out_of_vocabulary, token_dtype
from engine.data.shards import tokenizer_sha256
from engine.data.signals import batch_signals, split_draws
from engine.data.sources import DOCUMENT_FORMATS, Batch, PrepareError, Source, iter_batches, resolve_sources, samples

STATE = "prepare_state.json"


@dataclass
class PrepareSettings:
    seq_len: int
    """Sequence length the shards are for (the engine's ``train.seq_len``)."""
    val_fraction: float = 0.005
    """Share of the kept documents held out for evaluation (by content: a text always lands on the same side)."""
    near_dedup_threshold: float | None = 0.8
    """Estimated Jaccard similarity of word 5-grams from which a document is a near duplicate (None: off)."""
    num_perm: int = 128
    """MinHash signature length (a power of two)."""
    exact_dedup: bool = True
    """Drop documents whose words repeat an earlier document's exactly (case and spacing ignored)."""
    rules: QualityRules = field(default_factory=QualityRules)
    """Quality filters."""
    shard_tokens: int = 100_000_000
    """Tokens per shard file (a shard closes at the first document boundary past it)."""
    format: str | None = None
    """Input format (``text``, ``pretrain`` or a chat format), None: detected per file."""
    skip_invalid: bool = False
    """Drop malformed lines (counted as ``invalid``) instead of stopping at the first."""
    text_unit: str = "auto"
    """Document unit of text inputs: ``line``, ``paragraph``, ``file`` or ``auto`` (chosen per file,
    ``engine.data.formats.choose_text_unit``)."""
    max_line_bytes: int = MAX_LINE_BYTES
    """The longest input line (bytes, newline not counted); a longer one is a malformed line, never
    read whole."""

    def to_json(self) -> dict:
        out = asdict(self)
        out["rules"] = self.rules.to_json()
        return out


@dataclass
class SplitProgress:
    """Documents and tokens of one split so far."""

    docs: int = 0
    """Documents kept for the split."""
    tokens: int = 0
    """Their tokens (of the training split: the shard being written included)."""


@dataclass
class Progress:
    """What a progress display needs, after every batch."""

    bytes_total: int
    """Input bytes in all (the sizes of the inputs)."""
    bytes_done: int = 0
    """Input bytes read so far."""
    documents: int = 0
    """Records read so far (the input position of the last one, plus one)."""
    train: SplitProgress = field(default_factory=SplitProgress)
    """The training split so far."""
    val: SplitProgress = field(default_factory=SplitProgress)
    """The held-out split so far."""
    shards: int = 0
    """Training shards finished."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Records dropped so far, per reason."""
    replaying: bool = False
    """Still before the resume point (finished shards are being skipped)."""
    elapsed_s: float = 0.0


def _fingerprint(sources: list[Source], tokenizer_sha: str, settings: PrepareSettings) -> str:
    items = {
        "sources": [
            (str(s.path), s.format, s.bytes, s.path.stat().st_mtime_ns, s.unit and s.unit.unit) for s in sources
        ],
        "tokenizer": tokenizer_sha,
        "version": 1,
        # the units the sources were cut into count, not how they were asked for; a line limit
        # that every line passed changes nothing
        "settings": {k: v for k, v in settings.to_json().items() if k not in ("text_unit", "max_line_bytes")},
    }
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()


# --- the pipeline ----------------------------------------------------------------------------


def _text_units(sources: list[Source]) -> dict[str, str]:
    return {str(s.path): s.unit.unit for s in sources if s.unit is not None}


def _load_state(out: Path, fingerprint: str, units: dict[str, str]) -> list[dict]:
    """The complete training shards of an interrupted run with the same fingerprint ([] if none).
    PrepareError when that run cut a text input into other documents (``units``: path -> unit)."""
    try:
        state = json.loads((out / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(state, dict):
        return []
    theirs = state.get("text_units")
    if isinstance(theirs, dict):
        for path, unit in units.items():
            if theirs.get(path, unit) != unit:
                raise PrepareError(
                    f"{out}: an interrupted preparation cut {path} into {theirs[path]} documents, this "
                    f"run into {unit} documents; continue it with --text-unit {theirs[path]}, or "
                    f"delete {out / STATE} to start over"
                )
    if state.get("fingerprint") != fingerprint:
        return []
    good = []
    itemsize = int(state.get("itemsize", 0))
    for item in state.get("train", []):
        try:
            shard = ShardEntry.model_validate(item)
        except ValueError:
            break
        if shard.end_position is None:  # the last shard: only the manifest completes it
            break
        if file_problems(out, [shard], itemsize, masks=shard.mask_file is not None):
            break
        good.append(shard.model_dump(exclude_unset=True))
    return good


def _clear(out: Path, keep: set[str]) -> None:
    """Remove what an earlier preparation left that is not kept: shards, temporaries."""
    for path in out.iterdir():
        name = path.name
        stale = name.startswith((".train_", ".val_", f".{STATE}", f".{MANIFEST}")) or (
            name.endswith(".bin") and name.startswith(("train_", "val_"))
        )
        if stale and name not in keep and path.is_file():
            path.unlink()


def _load_tokenizer(tokenizer_dir: Path):
    """The tokenizer and its end-of-text id; PrepareError naming the directory."""
    from engine.data.tokenizer import eos_token_id, read_tokenizer

    try:
        tokenizer = read_tokenizer(tokenizer_dir)
        return tokenizer, eos_token_id(tokenizer_dir, tokenizer)
    except ValueError as exc:
        hint = "; train one with `cockpit tokenizer train`" if "missing" in str(exc) else ""
        raise PrepareError(f"{exc}{hint}") from None


def prepare(
    inputs: list[str | os.PathLike],
    tokenizer_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: PrepareSettings,
    progress: Callable[[Progress], None] | None = None,
) -> dict:
    """Prepare ``inputs`` into shards in ``out_dir`` (see the module docstring); returns the
    manifest, which has ``"skipped": true`` when the directory was complete already.

    The inputs and the tokenizer are checked before ``out_dir`` is made. A preparation that fails
    leaves nothing it made: the directory if it made it (and the parents it made), else the files
    it wrote; other files of a directory that was there stay. Interrupted (KeyboardInterrupt) after
    finishing a shard, it keeps its finished shards and state for a re-run to continue from."""
    if settings.seq_len < 1:
        raise PrepareError(f"--seq-len must be positive, got {settings.seq_len}")
    if not 0.0 <= settings.val_fraction < 1.0:
        raise PrepareError(f"--val-fraction must be in [0, 1), got {settings.val_fraction}")
    if settings.shard_tokens < 1:
        raise PrepareError("--shard-tokens must be positive")
    t0 = time.perf_counter()
    tokenizer_dir = Path(tokenizer_dir)
    if tokenizer_dir.is_file():  # its tokenizer.json named directly
        tokenizer_dir = tokenizer_dir.parent
    tokenizer, eos = _load_tokenizer(tokenizer_dir)
    sources = resolve_sources(inputs, settings.format, settings.text_unit, settings.max_line_bytes)
    out = Path(out_dir)
    try:
        created = _make_directory(out)
    except OSError as exc:
        raise PrepareError(f"{out}: cannot create the output directory ({exc.strerror})") from None
    before = _identities(out)
    try:
        return _prepare_into(out, sources, tokenizer_dir, tokenizer, eos, settings, progress, t0)
    except BaseException as exc:
        _undo(out, created, before, interrupted=isinstance(exc, KeyboardInterrupt))
        raise


def _make_directory(out: Path) -> Path | None:
    """Create ``out`` and its missing parents; the topmost directory this call created (None when
    ``out`` was there). Each level is made with ``exist_ok=False``, so one that another process made
    meanwhile is never taken for this call's."""
    missing = [d for d in (out, *out.parents) if not d.exists()]
    created = None
    try:
        for d in reversed(missing):  # the topmost first
            try:
                d.mkdir()
            except FileExistsError:
                continue
            created = created or d
        if not out.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(out))
    except OSError:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return created


def _identities(out: Path) -> dict[str, tuple[int, int]]:
    """``name -> (inode, mtime)`` of the files in ``out``: what was there before this preparation."""
    found = {}
    for path in out.iterdir():
        try:
            st = path.stat()
        except OSError:
            continue
        found[path.name] = (st.st_ino, st.st_mtime_ns)
    return found


def _resumable(out: Path) -> set[str]:
    """The state file and the finished shards (with masks) it lists: what a re-run continues from;
    empty when there is no state or it lists no shard."""
    try:
        state = json.loads((out / STATE).read_text(encoding="utf-8"))
        shards = [s for s in state["train"] if isinstance(s, dict)]
    except (OSError, ValueError, TypeError, KeyError):
        return set()
    if not shards:
        return set()
    return {STATE, *(s.get("file") for s in shards), *(s.get("mask_file") for s in shards)} - {None}


def _undo(out: Path, created: Path | None, before: dict[str, tuple[int, int]], interrupted: bool) -> None:
    """Remove what a failed preparation made: all of it (``created``, the directory it made, with
    everything in it) or, in a directory that was there, the files it wrote (new ones, and those
    it wrote over, its state file aside). An interrupted one keeps its state and finished shards,
    which a re-run continues from."""
    keep = _resumable(out) if interrupted else set()
    if created is not None and not keep:
        shutil.rmtree(created, ignore_errors=True)
        return
    for path in list(out.iterdir()):
        if path.name in keep or not path.is_file() or (path.name == STATE and STATE in before):
            continue
        try:
            st = path.stat()
        except OSError:
            continue
        if before.get(path.name) != (st.st_ino, st.st_mtime_ns):
            path.unlink(missing_ok=True)


def _prepare_into(
    out: Path,
    sources: list[Source],
    tokenizer_dir: Path,
    tokenizer,
    eos: int,
    settings: PrepareSettings,
    progress: Callable[[Progress], None] | None,
    t0: float,
) -> dict:
    """``prepare`` once the inputs are resolved, the tokenizer loaded and ``out`` exists."""
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    dtype = token_dtype(vocab)
    tok_sha = tokenizer_sha256(tokenizer_dir)
    fingerprint = _fingerprint(sources, tok_sha, settings)
    existing = inspect_shards(out)
    if existing.ok and existing.manifest.prepare is not None and existing.manifest.prepare.fingerprint == fingerprint:
        return {**existing.manifest.to_json(), "skipped": True}
    done = _load_state(out, fingerprint, _text_units(sources))
    (out / MANIFEST).unlink(missing_ok=True)  # from here on the directory is not complete
    _clear(out, {s["file"] for s in done} | {s["mask_file"] for s in done if s.get("mask_file")})
    resume_at = done[-1]["end_position"] if done else 0

    state = {"fingerprint": fingerprint, "itemsize": dtype.itemsize, "train": done, "text_units": _text_units(sources)}

    def save_state() -> None:
        state["train"] = train.shards
        atomic_write_json(out / STATE, state)

    masked = any(src.format in CHAT_FORMATS for src in sources)
    train = ShardWriter(out, "train", dtype, settings.shard_tokens, done, on_shard=save_state, masks=masked)
    val_parts: list[tuple[np.ndarray, np.ndarray, list[int], np.ndarray | None]] = []
    dedup = Deduplicator(settings.near_dedup_threshold, settings.num_perm)
    rules = settings.rules
    near = settings.near_dedup_threshold is not None
    dropped: dict[str, int] = {}
    prog = Progress(bytes_total=sum(s.bytes for s in sources), shards=len(done))
    counts = {"train": 0, "val": 0}
    val_tokens = 0

    def tokenize(batch: Batch, idx: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Tokens, cumulative document ends and (with masks) the loss mask of records ``idx``."""
        docs = [i for i in idx if batch.formats[i] in DOCUMENT_FORMATS]
        chats = [i for i in idx if batch.formats[i] not in DOCUMENT_FORMATS]
        per_doc: dict[int, tuple[list[int], list[int] | None]] = {}
        if docs:
            for i, enc in zip(docs, tokenizer.encode_batch([batch.texts[i] for i in docs], add_special_tokens=False)):
                per_doc[i] = (enc.ids + [eos], None)
        if chats:
            rendered = [render_record(batch.formats[i], batch.records[i]) for i in chats]
            for i, (ids, mask) in zip(chats, encode_segments_batch(tokenizer, rendered, eos)):
                per_doc[i] = (ids, mask)
        ids: list[int] = []
        mask: list[int] = []
        ends = np.empty(len(idx), dtype=np.int64)
        for j, i in enumerate(idx):
            doc_ids, doc_mask = per_doc[i]
            ids.extend(doc_ids)
            if masked:
                mask.extend(doc_mask if doc_mask is not None else [1] * len(doc_ids))
            ends[j] = len(ids)
        tokens = np.asarray(ids, dtype=np.int64)
        if (wrong := out_of_vocabulary(tokens, vocab, tokenizer_dir)) is not None:
            raise PrepareError(wrong)
        return tokens, ends, (np.asarray(mask, dtype=np.uint8) if masked else None)

    try:
        for batch in iter_batches(sources, settings.skip_invalid, dropped):
            sig = batch_signals(batch.texts, settings.num_perm if near else None)
            reasons = rules.reasons(sig)
            keys = sig.exact_keys.tolist()
            draws = split_draws(sig.exact_keys) if settings.val_fraction else None
            bands = dedup.band_keys(sig.signatures) if near else None
            train_idx: list[int] = []
            val_idx: list[int] = []
            for i, reason in enumerate(reasons):
                if settings.exact_dedup and not dedup.add_exact(keys[i]):
                    continue
                if reason is not None and batch.formats[i] in DOCUMENT_FORMATS:  # conversations are short by nature
                    dropped[reason] = dropped.get(reason, 0) + 1
                    continue
                if near and not dedup.add_near(sig.signatures[i], bands[i]):
                    continue
                if draws is not None and draws[i] < settings.val_fraction:
                    val_idx.append(i)
                else:
                    train_idx.append(i)
            counts["train"] += len(train_idx)
            counts["val"] += len(val_idx)
            if val_idx:
                tokens, ends, mask = tokenize(batch, val_idx)
                val_parts.append((tokens, ends, [batch.positions[i] for i in val_idx], mask))
                val_tokens += len(tokens)
            fresh = [i for i in train_idx if batch.positions[i] >= resume_at]  # before it: in a finished shard
            if fresh:
                tokens, ends, mask = tokenize(batch, fresh)
                train.add(tokens, ends, [batch.positions[i] for i in fresh], mask)
            if progress is not None:
                prog.bytes_done, prog.documents = batch.bytes_done, batch.positions[-1] + 1
                prog.train = SplitProgress(counts["train"], train.tokens)
                prog.val = SplitProgress(counts["val"], val_tokens)
                prog.shards = len(train.shards)
                prog.dropped = {**dropped, **{k: v for k, v in dedup.counts.items() if v}}
                prog.replaying = batch.positions[-1] < resume_at
                prog.elapsed_s = time.perf_counter() - t0
                progress(prog)
        train.close(end_position=None)
    except BaseException:  # the shard being written goes; the finished ones stay for a re-run
        train.abort()
        raise
    dropped.update({k: v for k, v in dedup.counts.items() if v})
    if not train.shards:
        raise PrepareError(
            "no training tokens: every document was dropped or held out ("
            + (", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "no documents")
            + ")"
        )
    val = ShardWriter(out, "val", dtype, settings.shard_tokens, masks=masked)
    for tokens, ends, positions, mask in val_parts:
        val.add(tokens, ends, positions, mask)
    val.close(end_position=None)

    tokenizer_ref = TokenizerRef(sha256=tok_sha, vocab_size=vocab, path=str(tokenizer_dir.resolve()))
    manifest = write_manifest(
        out,
        new_manifest(
            dtype.name,
            tokenizer_ref,
            settings.seq_len,
            train.shards,
            val.shards,
            loss_mask=masked,
            chat_markers_special=markers_are_special(tokenizer) if masked else None,
            documents={
                "read": counts["train"] + counts["val"] + sum(dropped.values()),
                "train": counts["train"],
                "val": counts["val"],
                "dropped": {k: dropped[k] for k in sorted(dropped)},
            },
            sources=[s.to_json() for s in sources],
            prepare={
                "fingerprint": fingerprint,
                "settings": settings.to_json(),
                "drop_reasons": ["invalid", "empty", EXACT, *REASONS, NEAR],
            },
        ),
    )
    (out / STATE).unlink(missing_ok=True)
    manifest["elapsed_s"] = time.perf_counter() - t0
    return manifest


def preview(
    inputs: list[str | os.PathLike],
    tokenizer_dir: str | os.PathLike | None,
    n: int = 3,
    fmt: str | None = None,
    text_unit: str = "auto",
    max_line_bytes: int = MAX_LINE_BYTES,
) -> list[dict]:
    """The first ``n`` valid records of the inputs as the shards will hold them: ``{"path", "line",
    "format", "runs": [(text, learnt), ...], "tokens", "learnt"}``, each run the decoded text of
    consecutive tokens with the same mask (``cockpit data prepare --debug``). Without a tokenizer
    (``tokenizer_dir`` None: none trained yet) the runs are the rendered text, and ``tokens`` and
    ``learnt`` are None."""
    tokenizer, eos = _load_tokenizer(Path(tokenizer_dir)) if tokenizer_dir is not None else (None, None)
    out = []
    for source in resolve_sources(inputs, fmt, text_unit, max_line_bytes):
        for sample in samples(source):
            if len(out) >= n:
                return out
            if not sample.ok or not sample.text or not sample.text.strip():
                continue
            if tokenizer is None:
                runs = [(sample.text, True)] if source.format in DOCUMENT_FORMATS else None
                runs = runs or render_record(source.format, sample.record)
                tokens = learnt = None
            else:
                runs, tokens, learnt = _token_runs(tokenizer, eos, source.format, sample)
            out.append(
                {
                    "path": str(source.path),
                    "line": sample.line,
                    "format": source.format,
                    "runs": runs,
                    "tokens": tokens,
                    "learnt": learnt,
                }
            )
    return out


def _token_runs(tokenizer, eos: int, fmt: str, sample) -> tuple[list[tuple[str, bool]], int, int]:
    """A record tokenized as the shards hold it: the decoded runs of tokens with the same mask,
    its tokens, and how many of them are learnt."""
    if fmt in DOCUMENT_FORMATS:
        ids = tokenizer.encode(sample.text, add_special_tokens=False).ids + [eos]
        mask = [1] * len(ids)
    else:
        [(ids, mask)] = encode_segments_batch(tokenizer, [render_record(fmt, sample.record)], eos)
    runs: list[tuple[str, bool]] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or mask[i] != mask[start]:
            runs.append((tokenizer.decode(ids[start:i], skip_special_tokens=False), bool(mask[start])))
            start = i
    return runs, len(ids), int(sum(mask))
