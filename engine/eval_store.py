"""Stored evaluations: ``runs/<run>/evals/``, one JSON file per evaluation made after the fact
(``cockpit ckpt eval``, ``cockpit ckpt gate``). Torch-free.

    record = StoredEval.new(step=12, checkpoint="checkpoints/checkpoint-12", data=EvalData(...), ...)
    store_eval(run_dir, record)                  # evals/<record.id>.json, written atomically
    evals, problems = read_evals(run_dir)        # oldest first; a bad file is a problem, never a crash

A record says which checkpoint was scored (step and directory), on what data (the run's held-out
split, a file and its sha256, or a shard directory and its manifest's sha256), how many tokens
were scored, the mean loss and its perplexity (``exp(loss)``), when, how long it took and which
command made it. The events file stays the engine's alone: evaluations of finished checkpoints
never append to it.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.atomic import atomic_write_text
from engine.rundir import RunPaths

#: What made a stored eval.
MADE_BY = ("ckpt eval", "ckpt gate")
HELD_OUT = "held-out"  #: ``EvalData.kind`` of the run's own held-out split


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True, frozen=True)


class EvalData(_Record):
    """The data an evaluation scored."""

    kind: Literal["held-out", "file", "shards"]
    """``held-out``: the run's held-out split, the windows its own evaluations score; ``file``: a
    .txt or .jsonl file; ``shards``: a prepared shard directory (its validation split when it has
    one, else its training shards)."""
    path: str | None = None
    """The file or shard directory; for ``held-out``, the run directory whose split it is."""
    sha256: str | None = None
    """``file``: the file's sha256; ``shards``: the sha256 of the directory's manifest.json."""
    split: str | None = None
    """``shards``: which split was scored (``val`` or ``train``)."""
    seq_len: int
    """Tokens per window."""
    windows: int
    """Windows scored (the first ones, in order: the same every time)."""

    def describe(self) -> str:
        """``held-out split``, ``file notes.txt (sha256 1a2b3c4d5e6f)``, ``shards data/sft (val)``."""
        if self.kind == HELD_OUT:
            return "held-out split"
        name = Path(self.path or "?").name
        if self.kind == "shards":
            return f"shards {name} ({self.split})"
        return f"file {name}" + (f" (sha256 {self.sha256[:12]})" if self.sha256 else "")


class StoredEval(_Record):
    """One evaluation of one checkpoint, as stored in ``evals/<id>.json``."""

    id: str
    """The file's name without ``.json``: ``checkpoint-<step>-<UTC time>-<random>``."""
    step: int | None
    """The checkpoint's step (its manifest's)."""
    checkpoint: str
    """The checkpoint directory, relative to the run directory (absolute outside a run)."""
    data: EvalData
    """What was scored."""
    tokens: int = Field(ge=0)
    """Tokens scored (predicted positions; a fine-tuning mask's prompt tokens are not scored)."""
    loss: float | None
    """Mean per-token loss (None when nothing was scored)."""
    perplexity: float | None
    """``exp(loss)``."""
    created: float
    """When it finished (seconds since the epoch)."""
    elapsed_s: float
    """Seconds it took, loading the checkpoint included."""
    made_by: str
    """The command that made it (``MADE_BY``)."""
    device: str = "cpu"
    """Where the forward passes ran."""

    @field_validator("loss", "perplexity", mode="before")
    @classmethod
    def _finite(cls, value):
        return None if isinstance(value, float) and not math.isfinite(value) else value

    @classmethod
    def new(cls, *, step: int | None, loss: float, **fields) -> StoredEval:
        """A record made now, with its id and perplexity."""
        created = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(created))
        ident = f"checkpoint-{step if step is not None else 'x'}-{stamp}-{secrets.token_hex(3)}"
        ppl = math.exp(min(loss, 700.0)) if math.isfinite(loss) else None
        return cls(id=ident, step=step, loss=loss, perplexity=ppl, created=created, **fields)

    def to_json(self) -> dict:
        return self.model_dump(mode="json")

    def card_row(self) -> dict:
        """The row of a model card's evaluations table (``engine.model_card``)."""
        return {"data": self.data.describe(), "loss": self.loss, "perplexity": self.perplexity, "tokens": self.tokens}


def store_eval(run_dir: str | os.PathLike, record: StoredEval) -> Path:
    """Write ``record`` to ``evals/<id>.json`` of ``run_dir`` (atomically); returns the path."""
    import json

    folder = RunPaths(Path(run_dir)).evals
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record.id}.json"
    atomic_write_text(path, json.dumps(record.to_json(), indent=1) + "\n")
    return path


def read_evals(run_dir: str | os.PathLike) -> tuple[list[StoredEval], list[str]]:
    """The stored evals of ``run_dir``, oldest first, and a problem (``FILE: what is wrong``) for
    each file that is not a readable eval record (skipped)."""
    import json

    folder = RunPaths(Path(run_dir)).evals
    records: list[StoredEval] = []
    problems: list[str] = []
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
    except OSError:  # no evals yet
        return [], []
    for path in files:
        try:
            records.append(StoredEval.model_validate(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            why = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            problems.append(f"{path}: not a stored eval ({why}); skipped")
    records.sort(key=lambda r: r.created)
    return records, problems


def latest_per_step(records: list[StoredEval]) -> dict[int, StoredEval]:
    """The newest stored eval of each checkpoint step (``records`` oldest first)."""
    latest: dict[int, StoredEval] = {}
    for record in records:
        if record.step is not None:
            latest[record.step] = record
    return latest
