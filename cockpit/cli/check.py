"""`cockpit check [CONFIG]`: is this run ready? Environment, machine, config, tokenizer, dataset,
memory estimate, and with ``--dry-run`` a few real optimizer steps. Exit 0 ready, 1 a blocking
failure, 2 a usage error (no such config file, a bad option)."""

from __future__ import annotations

import json

import typer

from cockpit.cli.common import fail


def check(
    config: str | None = typer.Argument(
        None, help="Config file or shipped config name; without it, the environment and machine only."
    ),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a config key (dotted)."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report as JSON (schema: cockpit/checks/schema.json)."
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Also run a few real optimizer steps: measured peak memory, step time, tokens/s, ETA and cost.",
    ),
    price_per_hour: float | None = typer.Option(
        None, "--price-per-hour", min=0.0, help="Machine price for the cost estimate (else train.price_per_hour)."
    ),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Training processes the run will have."),
) -> None:
    """Readiness report: is this run ready to launch?"""
    from cockpit.checks import run_checks
    from cockpit.checks.base import CheckContext
    from cockpit.checks.config import load_run_config, notes
    from cockpit.launch import resolve_config_path
    from engine.config import ConfigError

    path, cfg, first = None, None, []
    if config is not None:
        try:
            if not resolve_config_path(config).is_file():
                fail(f"{config}: config file not found")
        except ConfigError as exc:
            fail(str(exc))
        path, cfg, loaded = load_run_config(config, set_)
        first = [loaded]
        if path is None:
            path = resolve_config_path(config)
        else:
            for note in notes(cfg):
                typer.echo(f"note: {note}", err=True)
    ctx = CheckContext(config_path=path, cfg=cfg, nproc=nproc, dry_run=dry_run, price_per_hour=price_per_hour)
    report = run_checks(ctx, first)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=1))
    else:
        print_report(report)
    raise typer.Exit(0 if report.ready else 1)


def print_report(report) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from cockpit.checks.base import SECTION_TITLES, STATUS_STYLE

    console = Console(highlight=False)
    table = Table(show_header=False, box=None, pad_edge=False, expand=False)
    table.add_column(width=1)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    section = None
    for r in report.results:
        if r.section != section:
            section = r.section
            table.add_row("", Text(SECTION_TITLES.get(section, section), style="bold underline"), "")
        mark, color = STATUS_STYLE[r.status]
        detail = Text(r.detail)
        if r.fix and r.status in ("warn", "fail"):
            detail.append(f"\n→ {r.fix}", style="dim")
        table.add_row(Text(mark, style=color), Text(r.title, style=color if r.status != "ok" else ""), detail)
    console.print(table)
    color = "green" if report.ready else "red"
    console.print(Text(report.verdict, style=f"bold {color}"))


def register(app: typer.Typer) -> None:
    app.command("check")(check)
