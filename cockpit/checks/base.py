"""What every readiness check returns, and what it is given.

A check is a small function ``(ctx: CheckContext) -> list[CheckResult]`` (a list, because one
look at a dataset or a machine yields several findings). Checks never raise for a problem they
are meant to find: a broken input is a ``fail`` result whose ``detail`` names the file, line or key
and whose ``fix`` says what to do. The same results feed ``cockpit check`` (table or ``--json``)
and the wizard's checklist screen.

Checks are torch-free (``cockpit check`` answers in seconds): only the dry run starts the engine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]
STATUSES: tuple[str, ...] = ("ok", "warn", "fail", "skip")

#: Report sections, in display order.
SECTIONS: tuple[str, ...] = ("environment", "machine", "config", "tokenizer", "dataset", "memory", "dry_run", "upload")
#: What a report shows for each section.
SECTION_TITLES: dict[str, str] = {
    "environment": "Environment",
    "machine": "Machine",
    "config": "Config",
    "tokenizer": "Tokenizer",
    "dataset": "Dataset",
    "memory": "Memory",
    "dry_run": "Dry run",
    "upload": "Upload",
}
#: The mark and colour a report shows for each status.
STATUS_STYLE: dict[str, tuple[str, str]] = {
    "ok": ("✓", "green"),
    "warn": ("!", "yellow"),
    "fail": ("✗", "red"),
    "skip": ("-", "dim"),
}


@dataclass
class CheckResult:
    id: str
    """Stable dotted identifier, ``<section>.<name>`` (``dataset.lines``); scripts key on it."""
    section: str
    """One of SECTIONS."""
    title: str
    """Short human title (``Dataset lines``)."""
    status: Status
    """``ok``, ``warn`` (works, but look), ``fail`` (broken) or ``skip`` (not applicable / could not run)."""
    detail: str
    """What was found, naming files, lines, keys and figures."""
    fix: str | None = None
    """What to do about a ``warn`` or ``fail``."""
    blocking: bool = False
    """A failure that makes the run not ready (``cockpit check`` exits 1)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Machine-readable figures behind ``detail`` (JSON-safe: numbers, strings, lists, dicts)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckContext:
    """Inputs of one readiness report."""

    config_path: Path | None
    """The config file checked, or None (environment and machine checks only)."""
    cfg: Any = None
    """The validated ``engine.config.RunConfig`` with paths resolved, or None when it did not load."""
    nproc: int = 1
    """Training processes the run will have (``--nproc`` x ``--nnodes``)."""
    dry_run: bool = False
    """Run a few real optimizer steps (``--dry-run``)."""
    price_per_hour: float | None = None
    """Price of the machine for the cost estimate (``--price-per-hour``; else ``train.price_per_hour``)."""
    disk_free_bytes: int | None = None
    """Free disk where checkpoints go, instead of asking the filesystem (tests simulate a full disk)."""
    ram_free_bytes: int | None = None
    """Free RAM, instead of asking the OS (tests)."""

    # Facts one check finds and a later one reuses; None until the check that finds them has run
    # (``cockpit.checks.CHECKS`` runs the finders first).
    gpus: list[dict[str, Any]] | None = None
    """GPUs NVML sees (index, name, memory), found by the environment check; read by the memory check."""
    tokenizer: dict[str, Any] | None = None
    """``vocab_size`` the model will be sized with and ``will_train`` (trained at launch), found by the
    tokenizer check; read by the memory check."""
    dataset: dict[str, Any] | None = None
    """Counts of the training data (see ``cockpit.checks.dataset``), found by the dataset check."""
    model: dict[str, Any] | None = None
    """The model's shape and exact parameter counts (``model_facts``), found by the memory check; read
    by the machine check (checkpoint sizes on disk)."""
    memory: dict[str, Any] | None = None
    """The training memory estimate per device, found by the memory check; read by the dry run."""
    memory_fit: dict[str, Any] | None = None
    """Whether the estimate fits (``fits``, ``available``, ``needed``, ``largest_micro_batch``), found
    by the memory check; read by the dry run."""


def result(
    id: str, title: str, status: Status, detail: str, fix: str | None = None, blocking: bool | None = None, **data: Any
) -> CheckResult:
    """A CheckResult whose section is the id's prefix; a ``fail`` blocks unless told otherwise."""
    section = id.split(".", 1)[0]
    assert section in SECTIONS, id
    blocks = (status == "fail") if blocking is None else blocking
    return CheckResult(id, section, title, status, detail, fix, blocks, data)
