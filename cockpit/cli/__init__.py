"""The `cockpit` command. Keep this import light: no torch, no textual, no pydantic at start-up;
each command imports what it needs when it runs."""

from __future__ import annotations

import typer

from cockpit.cli import check as _check
from cockpit.cli import ckpt as _ckpt
from cockpit.cli import data as _data
from cockpit.cli import presets as _presets
from cockpit.cli import run as _run
from cockpit.cli import runs as _runs
from cockpit.cli import serve as _serve
from cockpit.cli import tokenizer as _tokenizer
from cockpit.cli.common import fail

app = typer.Typer(
    name="cockpit",
    help="A terminal training cockpit for language models.",
    add_completion=False,
    no_args_is_help=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    """A terminal training cockpit for language models.

    With no command: the full-screen app, on the runs under ./runs (the new-run wizard when there
    are none). Without a terminal, this help.
    """
    if ctx.invoked_subcommand is not None:
        return
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    from pathlib import Path

    from cockpit.app import make_app

    result = make_app(runs_dir=Path("runs")).run()
    if result == "detached":
        typer.echo("detached; the engine keeps training. Re-open with `cockpit`, or `cockpit attach`.")


_run.register(app)
_check.register(app)
_runs.register(app)
_presets.register(app)
_data.register(app)
_tokenizer.register(app)
_ckpt.register(app)
_serve.register(app)


def main() -> None:
    app()


__all__ = ["app", "main", "fail"]
