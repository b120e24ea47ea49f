"""The manifest of a prepared shard directory: one typed model, read and checked in one place.

    summary = inspect_shards(directory)      # ShardSummary: the Manifest (or None) and its problems
    manifest = summary.manifest               # Manifest: dtype, tokenizer, seq_len, shards, totals...

``manifest.json`` is written last (atomically) by the one shard writer (``engine.data.shard_writer``,
used by ``python -m engine.data.shards`` and ``cockpit data prepare``), so a directory with a
manifest is complete. ``inspect_shards`` reads it, validates it against ``Manifest`` and checks the
size of every shard (and loss-mask) file it lists, without reading the tokens. Its problems are
``engine.data.lines.Problem`` lines naming the manifest or the shard file: what ``cockpit check``
and ``cockpit data validate`` show, and what the engine's ``open_shards`` raises (the first one,
the same words).

Torch-free and numpy-free (pydantic only): the cockpit reads manifests without the engine's stack.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.atomic import atomic_write_text
from engine.data.lines import Problem, json_error, utf8_error

#: The manifest's file name, format name and the version this code reads and writes.
MANIFEST = "manifest.json"
FORMAT = "cockpit-token-shards"
VERSION = 1
#: Bytes per token of each shard dtype.
ITEMSIZE: dict[str, int] = {"uint16": 2, "uint32": 4}
#: Suffix of a shard's loss-mask file (``train_000.bin`` -> ``train_000.mask.bin``).
MASK_SUFFIX = ".mask.bin"
#: What to do about a damaged or unfinished shard directory.
AGAIN = "prepare the shards again"


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)


class TokenizerRef(_Part):
    sha256: str
    """sha256 of the tokenizer's ``tokenizer.json``: what the shards are tied to."""
    vocab_size: int | None = None
    """Vocabulary size, added tokens included."""
    path: str | None = None
    """Absolute path of the tokenizer directory the shards were written with."""


class ShardEntry(_Part):
    file: str
    """Shard file name in the directory, e.g. ``train_000.bin``."""
    tokens: int = Field(ge=0)
    """Tokens in the file (its size is ``tokens`` x the dtype's itemsize)."""
    sha256: str | None = None
    """sha256 of the file's bytes."""
    end_position: int | None = None
    """Input position (record count) where the shard ended; kept in ``prepare_state.json`` only,
    None for the last shard (only the manifest completes it)."""
    mask_file: str | None = None
    """The shard's uint8 loss-mask file (1 byte per token), when the manifest has ``loss_mask``."""
    mask_sha256: str | None = None
    """sha256 of the mask file's bytes."""


class DocumentCounts(_Part):
    read: int
    """Records read from the inputs."""
    train: int
    """Documents in the training shards."""
    val: int
    """Documents held out in the validation shards."""
    dropped: dict[str, int] = {}
    """Records dropped, per reason (``invalid``, ``empty``, duplicates, quality rules)."""


class SourceRecord(_Part):
    path: str
    """Absolute path of an input file."""
    format: str
    """Its format (``text``, ``pretrain`` or a chat format)."""
    bytes: int
    """Its size when it was read."""
    text_unit: str | None = None
    """How a text input was cut into documents (``line``, ``paragraph``, ``file``)."""
    text_unit_reason: str | None = None
    """Why (``as set``, or what ``auto`` saw)."""


class PrepareRecord(_Part):
    fingerprint: str
    """sha256 of the inputs, tokenizer and settings: the same preparation again is skipped."""
    settings: dict[str, Any]
    """``cockpit data prepare``'s settings (``PrepareSettings``)."""
    drop_reasons: list[str] = []
    """Every reason a document can be dropped for, in the order they are checked."""


class Manifest(_Part):
    format: Literal["cockpit-token-shards"]
    """Always ``cockpit-token-shards``."""
    version: Literal[1]
    """Format version (``VERSION``)."""
    dtype: Literal["uint16", "uint32"]
    """Token dtype of every shard: uint16 when the vocabulary has fewer than 65,536 entries."""
    tokenizer: TokenizerRef
    """The tokenizer the shards were written with."""
    seq_len: int = Field(ge=1)
    """Sequence length the shards were prepared for (the engine's ``train.seq_len``)."""
    shards: list[ShardEntry]
    """Training shards, in stream order."""
    total_tokens: int
    """Tokens of the training shards (their sum)."""
    val_shards: list[ShardEntry] | None = None
    """Validation shards (``cockpit data prepare``), None or empty when there are none."""
    val_tokens: int | None = None
    """Tokens of the validation shards."""
    loss_mask: bool = False
    """Every shard has a uint8 loss mask beside it (fine-tuning records)."""
    chat_markers_special: bool | None = None
    """With a loss mask: whether the tokenizer has the chat template's markers as special tokens."""
    documents: DocumentCounts | None = None
    """What ``cockpit data prepare`` read, kept and dropped."""
    sources: list[SourceRecord] | None = None
    """The input files of ``cockpit data prepare``."""
    prepare: PrepareRecord | None = None
    """How ``cockpit data prepare`` made the directory."""

    @model_validator(mode="after")
    def _totals(self) -> Manifest:
        total = sum(s.tokens for s in self.shards)
        if self.total_tokens != total:
            raise ValueError(f"'total_tokens' is {self.total_tokens!r}, the shards hold {total:,}")
        return self

    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.dtype]

    def entries(self, split: str = "train") -> list[ShardEntry]:
        """The shard entries of ``split``: "train" (``shards``) or "val" (``val_shards``)."""
        return self.shards if split == "train" else self.val_shards or []

    def to_json(self) -> dict[str, Any]:
        """The manifest as written: the keys that were set, nothing added."""
        return self.model_dump(mode="json", exclude_unset=True)


def new_manifest(
    dtype: str,
    tokenizer: TokenizerRef,
    seq_len: int,
    shards: list[dict],
    val_shards: list[dict] | None = None,
    **prepared: Any,
) -> Manifest:
    """The manifest of freshly written shards (``ShardWriter.shards``: their ``end_position`` is
    dropped, totals are summed); ``val_shards`` and ``prepared`` (``loss_mask``, ``documents``...)
    only when given, so a plain shard directory's manifest has none of them."""

    def entries(items: list[dict]) -> list[dict]:
        return [{k: v for k, v in s.items() if k != "end_position"} for s in items]

    fields: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype,
        "tokenizer": tokenizer,
        "seq_len": seq_len,
        "shards": entries(shards),
        "total_tokens": sum(s["tokens"] for s in shards),
    }
    if val_shards is not None:
        fields.update(val_shards=entries(val_shards), val_tokens=sum(s["tokens"] for s in val_shards))
    return Manifest.model_validate({**fields, **prepared})


def write_manifest(directory: str | os.PathLike, manifest: Manifest) -> dict[str, Any]:
    """Write ``manifest.json`` into ``directory`` atomically (last: it marks the directory complete);
    returns what was written."""
    data = manifest.to_json()
    atomic_write_json(Path(directory) / MANIFEST, data)
    return data


def atomic_write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically (fsynced)."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


# --- reading ----------------------------------------------------------------------------------


class ShardSummary:
    """A shard directory as its manifest describes it, with what is wrong with it."""

    def __init__(self, path: str, manifest: Manifest | None, problems: list[Problem]):
        self.path = path
        """The directory, as given."""
        self.manifest = manifest
        """The validated manifest, or None when it is missing, unreadable or malformed."""
        self.problems = problems
        """What is wrong, the manifest's problems first, then the files'."""

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.problems

    @property
    def tokens(self) -> int:
        return self.manifest.total_tokens if self.manifest else 0

    @property
    def shards(self) -> int:
        return len(self.manifest.shards) if self.manifest else 0

    @property
    def tokenizer_sha256(self) -> str | None:
        return self.manifest.tokenizer.sha256 if self.manifest else None

    @property
    def seq_len(self) -> int | None:
        return self.manifest.seq_len if self.manifest else None


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_problems(name: str, exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        where = _where(err["loc"])
        if err["type"] == "missing":
            problems.append(Problem(name, 0, f"missing key '{where}'", "missing_key"))
        elif not where:  # the model's own check (totals)
            problems.append(Problem(name, 0, err["msg"].removeprefix("Value error, "), "value"))
        else:
            kind = "value" if err["type"] in ("literal_error", "greater_than_equal") else "type"
            problems.append(Problem(name, 0, f"'{where}': {err['msg']}, got {err['input']!r}", kind))
    return problems


def read_manifest_file(directory: Path) -> tuple[Manifest | None, list[Problem]]:
    """The validated manifest of ``directory`` or None, and the problems of the manifest itself."""
    path = directory / MANIFEST
    name = str(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None, [
            Problem(
                name,
                0,
                f"missing: not a prepared shard directory, or its preparation did not finish; {AGAIN}",
                "missing",
            )
        ]
    except UnicodeDecodeError as exc:
        return None, [Problem(name, 0, utf8_error(exc), "utf8")]
    except json.JSONDecodeError as exc:
        return None, [Problem(name, exc.lineno, json_error(exc), "json")]
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None, [Problem(name, 0, f"not a {FORMAT} manifest", "value")]
    if data.get("version") != VERSION:
        return None, [
            Problem(name, 0, f"format version {data.get('version')!r}, this engine reads version {VERSION}", "value")
        ]
    try:
        return Manifest.model_validate_json(json.dumps(data), strict=True), []
    except ValidationError as exc:
        return None, _validation_problems(name, exc)


def file_problems(directory: Path, entries: list[ShardEntry], itemsize: int, masks: bool = False) -> list[Problem]:
    """The shard files (and with ``masks`` their loss masks) of ``entries`` that are missing or
    not the size the manifest says; [] when every one is right."""
    problems = []
    for shard in entries:
        file = directory / shard.file
        expected = shard.tokens * itemsize
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            problems.append(Problem(str(file), 0, f"shard missing (listed in {MANIFEST}); {AGAIN}", "missing"))
            continue
        if size != expected:
            problems.append(
                Problem(
                    str(file),
                    0,
                    f"{size:,} bytes, but {MANIFEST} says {shard.tokens:,} tokens x "
                    f"{itemsize} B = {expected:,} bytes; the shard is truncated or "
                    f"damaged, {AGAIN}",
                    "value",
                )
            )
        if masks:
            mask = directory / (shard.mask_file or shard.file.removesuffix(".bin") + MASK_SUFFIX)
            if not shard.mask_file or not mask.is_file() or mask.stat().st_size != shard.tokens:
                problems.append(
                    Problem(
                        str(mask),
                        0,
                        f"loss mask missing or not {shard.tokens:,} bytes (listed in {MANIFEST}); {AGAIN}",
                        "missing",
                    )
                )
    return problems


def inspect_shards(path: str | os.PathLike) -> ShardSummary:
    """Read and check a shard directory: its manifest, and the sizes of every shard and loss-mask
    file it lists (without reading the tokens). Problems name the manifest or the file (line 0)."""
    path = Path(path)
    if not path.is_dir():
        what = "not a directory" if path.exists() else "shard directory not found"
        return ShardSummary(
            str(path), None, [Problem(str(path), 0, f"{what}; prepare it with `cockpit data prepare`", "missing")]
        )
    manifest, problems = read_manifest_file(path)
    if manifest is None:
        return ShardSummary(str(path), None, problems)
    for split in ("train", "val"):
        problems += file_problems(path, manifest.entries(split), manifest.itemsize, manifest.loss_mask)
    if manifest.total_tokens == 0:
        problems.append(Problem(str(path), 0, "the shards hold no tokens", "value"))
    return ShardSummary(str(path), manifest, problems)
