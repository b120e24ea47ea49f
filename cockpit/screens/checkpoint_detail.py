"""One checkpoint in full: the run and model it belongs to, its metrics, its copy at each upload
target, and its files with their sizes and sha256 from the manifest. ``escape`` goes back to the viewer."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from cockpit.checkpoint_view import NOT_VERIFIED, CheckpointDetail, checkpoint_detail
from cockpit.widgets.checkpoint_list import perplexity
from cockpit.widgets.key_bar import KeyBar
from engine import units
from engine.checkpoint_index import CheckpointRecord
from engine.upload_status import UPLOADING, UploadCopy

_UPLOAD_STYLE = {"done": "green", "failed": "bold red", "uploading": "yellow", "queued": "dim"}


def render_uploads(copies: tuple[UploadCopy, ...]) -> Table:
    """Each target's copy: its state (with the percent sent while uploading), bytes, and why it failed."""
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=True)
    table.add_column("upload target", no_wrap=True, overflow="ellipsis", ratio=3)
    table.add_column("state", no_wrap=True, width=14)
    table.add_column("bytes", justify="right", no_wrap=True, width=15)
    table.add_column("error", overflow="fold", ratio=2)
    for c in copies:
        state = c.state
        if c.state == UPLOADING and c.fraction is not None:
            state += f" {units.percent(100 * c.fraction)}"
        sent = units.bytes_pair(c.bytes_done, c.bytes_total) if c.bytes_done is not None else units.DASH
        table.add_row(c.target, Text(state, style=_UPLOAD_STYLE.get(c.state, "")), sent, Text(c.error or "", "red"))
    return table


def render_detail(detail: CheckpointDetail, integrity: str | None) -> Group:
    """The detail as rich renderables (a summary, the metrics, the files)."""
    r = detail.record
    flags = [f for f, on in (("latest", r.latest), ("best eval", r.best), ("incomplete", not r.complete)) if on]
    head = Text.assemble(
        (f"step {r.step:,}", "bold"),
        f"  {r.reason or units.DASH}",
        (f"  {' · '.join(flags)}" if flags else "", "bold yellow"),
        "\n",
        (r.directory, "dim"),
    )
    config = Text(
        "  ".join(f"{k} {v}" for k, v in detail.config.items()) or "no config summary (no config.json or run.yaml)",
        style="",
    )
    metrics = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for col in ("loss", "eval loss", "perplexity", "size", "integrity"):
        metrics.add_column(col, justify="right" if col != "integrity" else "left")
    metrics.add_row(
        units.loss(r.train_loss),
        units.loss(r.eval_loss),
        perplexity(r.perplexity),
        units.nbytes(r.size_bytes),
        integrity or NOT_VERIFIED,
    )
    stored: list[Text] = []
    if r.stored_evals:
        stored.append(
            Text.assemble(
                ("stored eval ", "bold"),
                f"loss {units.loss(r.stored_eval_loss)}  ppl {perplexity(r.stored_perplexity)}  on {r.stored_eval_data}",
                (f"  (newest of {r.stored_evals})" if r.stored_evals > 1 else "", "dim"),
            )
        )
    if detail.problem is not None:
        files: Text | Table = Text(detail.problem, style="red")
    else:
        files = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=True)
        files.add_column("file", no_wrap=True, overflow="ellipsis", ratio=2)
        files.add_column("size", justify="right", no_wrap=True, width=9)
        files.add_column("sha256", no_wrap=True, overflow="ellipsis", ratio=5, style="dim")
        for rel, size, sha in detail.files:
            files.add_row(rel, units.nbytes(size), sha or units.DASH)
    uploads = [Text(""), render_uploads(r.uploads)] if r.uploads else []
    return Group(head, Text(""), config, Text(""), metrics, *stored, *uploads, Text(""), files)


class CheckpointDetailScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, run_dir: Path, record: CheckpointRecord, integrity: str | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.record = record
        self.detail = checkpoint_detail(self.run_dir, record)
        self.integrity = integrity

    def compose(self) -> ComposeResult:
        yield Static(f"Checkpoint of [b]{self.run_dir.name}[/b]", id="viewer-title")
        with VerticalScroll(id="ckpt-pane") as pane:
            pane.border_title = f"step {self.record.step:,}"
            yield Static(render_detail(self.detail, self.integrity), id="ckpt-detail")
        yield KeyBar()
