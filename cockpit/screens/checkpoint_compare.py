"""Two checkpoints side by side (of one run or two): their metrics and the change from A to B, their
sizes, and every run.yaml and config.json key that differs (``engine.checkpoint_compare``).
``escape`` goes back to the viewer."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from cockpit.checkpoint_view import Side, compare_records
from cockpit.widgets.key_bar import KeyBar
from engine import units


def _metric(name: str, value: float | None) -> str:
    return units.DASH if value is None else (f"{value:.2f}" if name == "perplexity" else units.loss(value))


def render_compare(a: Side, b: Side, info: dict) -> Group:
    """The comparison ``info`` (``compare_checkpoints``) as rich renderables."""
    head = Text.assemble(
        ("A ", "bold reverse"), f" {a.label}  ", (a.record.directory, "dim"), "\n",
        ("B ", "bold reverse"), f" {b.label}  ", (b.record.directory, "dim"),
    )  # fmt: skip
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("", "A", "B", "B - A"):
        table.add_column(col, justify="right" if col else "left")
    for name, m in info["metrics"].items():
        delta = units.DASH if m["delta"] is None else f"{m['delta']:+.4f}"
        style = "" if m["delta"] is None or m["delta"] == 0 else ("green" if m["delta"] < 0 else "red")
        table.add_row(name.replace("_", " "), _metric(name, m["a"]), _metric(name, m["b"]), Text(delta, style=style))
    size = info["size"]
    sign = "+" if size["delta"] >= 0 else ""
    table.add_row("size", units.nbytes(size["a"]), units.nbytes(size["b"]), sign + units.nbytes(size["delta"]))
    parts: list = [head, Text(""), table]
    for title, diff in (("run.yaml", info["config"]), ("config.json", info["model_config"])):
        parts.append(Text(""))
        if not diff:
            parts.append(Text.assemble((title, "bold"), ": no differences"))
            continue
        count = f"{len(diff)} key differs" if len(diff) == 1 else f"{len(diff)} keys differ"
        parts.append(Text.assemble((title, "bold"), f": {count}"))
        keys = Table(box=None, header_style="bold", pad_edge=False, expand=True)
        keys.add_column("key", no_wrap=True, overflow="ellipsis", ratio=2)
        keys.add_column("A", overflow="fold", ratio=2)
        keys.add_column("B", overflow="fold", ratio=2)
        for key, (va, vb) in diff.items():
            keys.add_row(key, Text(repr(va)), Text(repr(vb)))
        parts.append(keys)
    return Group(*parts)


class CheckpointCompareScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, a: Side, b: Side) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.info = compare_records(a, b)

    def compose(self) -> ComposeResult:
        yield Static(f"Compare [b]A[/b] {self.a.label} with [b]B[/b] {self.b.label}", id="viewer-title")
        with VerticalScroll(id="ckpt-pane") as pane:
            pane.border_title = "B - A"
            yield Static(render_compare(self.a, self.b, self.info), id="ckpt-compare")
        yield KeyBar()
