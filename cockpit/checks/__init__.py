"""Readiness checks, shared by ``cockpit check`` and the wizard's checklist.

    report = run_checks(CheckContext(config_path, cfg, ...), load_result)
    report.ready, report.verdict, report.to_json()

Checks run in an order where later ones reuse what earlier ones found (``ctx.cache``: the
tokenizer's vocabulary sizes the model, the model sizes the checkpoints on disk); the report shows
them by section. A check that crashes becomes a ``warn`` naming the crash: one broken check never
hides the others.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field

from cockpit.checks.base import SECTIONS, STATUSES, CheckContext, CheckResult, result

#: The checks in the order they run: "module:function" under cockpit.checks.
CHECKS = (
    "environment:check_environment",
    "config:check_config",
    "tokenizer:check_tokenizer",
    "dataset:check_dataset",
    "memory:check_memory",
    "machine:check_machine",
    "dry_run:check_dry_run",
    "upload:check_upload",
)

#: The cheap, blocking checks ``cockpit run`` makes before it creates the run directory
#: (``cockpit.checks.preflight``): the dataset check bounded for large files.
PREFLIGHT = (
    "config:check_config",
    "tokenizer:check_tokenizer",
    "preflight:check_dataset_bounded",
)

#: ``schema`` of ``--json``; raised only when a key is removed or changes meaning.
SCHEMA_ID = "cockpit.check/1"


@dataclass
class Report:
    config: str | None
    results: list[CheckResult]
    elapsed_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        order = {s: i for i, s in enumerate(SECTIONS)}
        self.results.sort(key=lambda r: order.get(r.section, len(order)))  # stable: run order within a section
        self.counts = {s: sum(r.status == s for r in self.results) for s in STATUSES}

    @property
    def blocking(self) -> list[CheckResult]:
        return [r for r in self.results if r.blocking and r.status == "fail"]

    @property
    def ready(self) -> bool:
        return not self.blocking

    @property
    def verdict(self) -> str:
        c = self.counts
        tail = f"{c['ok']} ok, {c['warn']} warning(s), {c['fail']} failure(s), {c['skip']} skipped"
        if not self.ready:
            return f"NOT READY: {len(self.blocking)} blocking ({', '.join(r.id for r in self.blocking)}); {tail}"
        if self.config is None:
            return f"machine ready (no config given: run `cockpit check CONFIG` for a run); {tail}"
        return f"READY to launch {self.config}; {tail}"

    def to_json(self) -> dict:
        return {"schema": SCHEMA_ID, "config": self.config, "ready": self.ready, "verdict": self.verdict,
                "counts": self.counts, "elapsed_s": round(self.elapsed_s, 3),
                "results": [r.to_json() for r in self.results]}


def _load(spec: str):
    module, func = spec.split(":")
    return getattr(importlib.import_module(f"cockpit.checks.{module}"), func)


def _section(spec: str) -> str:
    """The section a check reports in: its module's name (``dataset:check_dataset``), else the word
    after ``check_`` in its function's name (``preflight:check_dataset_bounded``)."""
    module, func = spec.split(":")
    return module if module in SECTIONS else func.removeprefix("check_").split("_")[0]


def run_checks(ctx: CheckContext, first: list[CheckResult] = (), checks: tuple[str, ...] = CHECKS) -> Report:
    """Run ``checks`` on ``ctx``; ``first`` holds results found before (loading the config)."""
    t0 = time.perf_counter()
    results = list(first)
    for spec in checks:
        if ctx.cfg is None and not spec.startswith(("environment:", "machine:")):
            continue
        try:
            results.extend(_load(spec)(ctx))
        except Exception as exc:  # a bug in one check must not hide the others
            section = _section(spec)
            results.append(result(f"{section}.crashed", f"{section} check", "warn",
                                  f"the {section} check crashed: {type(exc).__name__}: {exc}", blocking=False))
    return Report(config=str(ctx.config_path) if ctx.config_path else None, results=results,
                  elapsed_s=time.perf_counter() - t0)
