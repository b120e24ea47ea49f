"""Preflight: the cheap, blocking readiness checks ``cockpit run`` makes before it creates the run
directory, so that a bad path, data file, tokenizer or model size is refused in a second with one
line (exit 2) instead of failing in the engine half a minute later.

    problem = preflight(cfg, config_path, nproc)     # None, or "file: what is wrong; what to do"

It runs the checks of ``cockpit check`` (``PREFLIGHT`` in ``cockpit.checks``): config (paths,
positions, intervals), tokenizer (loads, fits the embedding) and dataset, the dataset one bounded
(``check_dataset_bounded``): a file up to ``FULL_CHECK_BYTES`` and any shard directory (its manifest
and file sizes) get the full check; of a larger file the format and the first ``HEAD_BYTES`` are
read, because reading every line of a huge file is ``cockpit check``'s job, not a launch's.
"""

from __future__ import annotations

from pathlib import Path

from cockpit.checks.base import CheckContext, CheckResult, result

#: Data files up to this size get the full dataset check (every line, tokens against seq_len).
FULL_CHECK_BYTES = 64 << 10
#: Of a larger file, about this much of its head is read and validated.
HEAD_BYTES = 1 << 20
#: Results of the config checks about the data, left to node 0 by the other nodes.
DATA_RESULTS = ("config.paths",)
#: A fix longer than this is left to ``cockpit check``.
SHORT_FIX = 100


def check_dataset_bounded(ctx: CheckContext) -> list[CheckResult]:
    """``check_dataset``, but of a file over ``FULL_CHECK_BYTES`` only its format and head."""
    from cockpit.checks.dataset import check_dataset

    path = Path(ctx.cfg.data.path)
    if ctx.cfg.data.source == "shards" or not path.is_file() or path.stat().st_size <= FULL_CHECK_BYTES:
        return check_dataset(ctx)
    return _check_head(ctx, path)


def _check_head(ctx: CheckContext, path: Path) -> list[CheckResult]:
    from cockpit.checks.dataset import check_format, lines_result
    from engine.data.lines import FormatError
    from engine.data.records import iter_samples
    from engine.data.summary import Summary
    from engine.data.textunits import choose_text_unit

    try:
        unit = choose_text_unit(path, ctx.cfg.data.text_unit, ctx.cfg.data.max_line_bytes)
    except FormatError as exc:
        return [result("dataset.format", "Format", "fail", str(exc), "check data.path")]
    fmt, fmt_result = check_format(ctx, path, unit)
    if fmt_result.data.get("binary"):
        return [fmt_result]
    summary = Summary(str(path), fmt, max_problems=5)
    if fmt == "text":
        summary.unit = unit
    for sample in iter_samples(path, fmt, unit.unit, ctx.cfg.data.max_line_bytes):
        summary.add(sample)
        if summary.bytes >= HEAD_BYTES:
            break
    out = [
        result("dataset.path", "Data file", "ok", f"{path}: {path.stat().st_size:,} bytes"),
        fmt_result,
        lines_result(summary),
    ]
    if out[-1].status == "ok":
        out[-1].detail = (
            f"the first {summary.records:,} {fmt} records ({summary.bytes:,} bytes) are valid; "
            f"`cockpit check` reads every line"
        )
    return out


def preflight(cfg, config_path: Path, nproc: int = 1, data: bool = True) -> str | None:
    """The first blocking failure of the cheap checks as one line naming the file, or None.

    ``data=False`` (a worker node: node 0 checks the data and the tokenizer, and makes the demo's)
    runs the config checks but the paths."""
    from cockpit.checks import PREFLIGHT, run_checks, section_of

    checks = PREFLIGHT if data else tuple(c for c in PREFLIGHT if section_of(c) == "config")
    report = run_checks(CheckContext(config_path=Path(config_path), cfg=cfg, nproc=nproc), checks=checks)
    blocking = [r for r in report.blocking if data or r.id not in DATA_RESULTS]
    if not blocking:
        return None
    subjects = {"config": config_path, "tokenizer": cfg.tokenizer.path, "dataset": cfg.data.path}
    return one_line(blocking[0], subjects.get(blocking[0].section))


def one_line(r: CheckResult, subject: Path | None = None) -> str:
    """A failed result as one line: the first problem its detail quotes (``file:line: ...``, after a
    header ending in ``:``), else its first line; prefixed with ``subject`` unless it names it; the
    fix if short."""
    lines = r.detail.splitlines()
    line = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
    if subject is not None and str(subject) not in line:
        line = f"{subject}: {line}"
    if r.fix and len(r.fix) <= SHORT_FIX:
        line += f"; {r.fix}"
    return line
