"""Readiness checks, shared by ``cockpit check`` and the wizard's checklist.

    report = run_checks(CheckContext(config_path, cfg, ...), load_result)
    report.ready, report.verdict, report.to_json()

Checks run in an order where later ones reuse what earlier ones found (the fact fields of
``CheckContext``: the tokenizer's vocabulary sizes the model, the model sizes the checkpoints on
disk); the report shows
them by section. A check that crashes becomes a ``warn`` naming the crash: one broken check never
hides the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cockpit.checks.base import SECTIONS, STATUSES, CheckContext, CheckResult, result
from cockpit.checks.config import check_config
from cockpit.checks.dataset import check_dataset
from cockpit.checks.dry_run import check_dry_run
from cockpit.checks.environment import check_environment
from cockpit.checks.machine import check_machine
from cockpit.checks.memory import check_memory
from cockpit.checks.preflight import check_dataset_bounded
from cockpit.checks.tokenizer import check_tokenizer
from cockpit.checks.upload import check_upload

Check = Callable[[CheckContext], list[CheckResult]]

#: The checks in the order they run: a check that finds a fact (``CheckContext.gpus``,
#: ``.tokenizer``, ``.model``, ...) runs before the checks that read it.
CHECKS: tuple[Check, ...] = (
    check_environment,
    check_config,
    check_tokenizer,
    check_dataset,
    check_memory,
    check_machine,
    check_dry_run,
    check_upload,
)

#: The cheap, blocking checks ``cockpit run`` makes before it creates the run directory
#: (``cockpit.checks.preflight``): the dataset check bounded for large files.
PREFLIGHT: tuple[Check, ...] = (
    check_config,
    check_tokenizer,
    check_dataset_bounded,
)

#: Checks that need no config: they look at the machine.
WITHOUT_CONFIG = frozenset({check_environment, check_machine})

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
        return {
            "schema": SCHEMA_ID,
            "config": self.config,
            "ready": self.ready,
            "verdict": self.verdict,
            "counts": self.counts,
            "elapsed_s": round(self.elapsed_s, 3),
            "results": [r.to_json() for r in self.results],
        }


def section_of(check: Check) -> str:
    """The section a check reports in: its module's name (``cockpit.checks.dataset``), else the word
    after ``check_`` in its function's name (``check_dataset_bounded`` of the pre-flight)."""
    module = check.__module__.rsplit(".", 1)[-1]
    return module if module in SECTIONS else check.__name__.removeprefix("check_").split("_")[0]


def run_check(check: Check, ctx: CheckContext) -> list[CheckResult]:
    """The results of one check on ``ctx``: none when it needs a config and ``ctx`` has none; a
    ``warn`` naming the crash when the check crashes (a bug in one check must not hide the others)."""
    if ctx.cfg is None and check not in WITHOUT_CONFIG:
        return []
    try:
        return check(ctx)
    except Exception as exc:
        section = section_of(check)
        return [
            result(
                f"{section}.crashed",
                f"{section} check",
                "warn",
                f"the {section} check crashed: {type(exc).__name__}: {exc}",
                blocking=False,
            )
        ]


def run_checks(ctx: CheckContext, first: list[CheckResult] = (), checks: tuple[Check, ...] = CHECKS) -> Report:
    """Run ``checks`` on ``ctx``; ``first`` holds results found before (loading the config)."""
    t0 = time.perf_counter()
    results = list(first)
    for check in checks:
        results.extend(run_check(check, ctx))
    return Report(
        config=str(ctx.config_path) if ctx.config_path else None, results=results, elapsed_s=time.perf_counter() - t0
    )
