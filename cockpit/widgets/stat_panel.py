"""Training progress and the latest numbers: step, loss, learning rate, throughput, time."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from cockpit.run_state import Stats
from cockpit.widgets.bars import meter, state_color
from engine import units
from engine.protocol import ENDED_STATES


def _delta(d: float | None) -> Text:
    """The loss trend as an arrow: green and down while it falls."""
    if d is None or abs(d) < 5e-4:
        return Text("")
    arrow, color = ("▼", "green") if d < 0 else ("▲", "red")
    return Text(f" {arrow}{abs(d):.3f}", style=color)


class StatPanel(Widget):
    DEFAULT_CSS = """
    StatPanel {
        height: auto;
    }
    """

    stats: reactive[Stats | None] = reactive(None, layout=True)

    def render(self) -> Group | Text:
        s = self.stats
        if s is None:
            return Text("waiting for the engine…", style="dim italic")
        width = self.content_size.width
        wide = width >= 44

        # Step line and the progress bar.
        top = Table.grid(expand=True)
        top.add_column(no_wrap=True)
        top.add_column(justify="right", no_wrap=True)
        step = Text.assemble(("Step ", "dim"), (units.integer(s.step), "bold"))
        if s.max_steps:
            step.append(f" / {units.integer(s.max_steps)}", style="dim")
            pct = Text(f"{100 * s.step / s.max_steps:.1f}%", style="bold")
        else:
            pct = Text("")
        top.add_row(step, pct)
        fraction = (s.step / s.max_steps) if s.max_steps else 0.0
        color = "green" if s.state == "finished" else state_color(s.state)
        if s.state in ("running", "checkpointing", "starting"):
            color = "cyan"
        # A progress bar renders no line end of its own: give it a row.
        bar = Table.grid(expand=True)
        bar.add_column(ratio=1)
        bar.add_row(meter(fraction, color=color))

        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        if wide:
            grid.add_column(style="dim", no_wrap=True)
            grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)

        loss = Text(units.loss(s.loss), style="bold")
        loss.append_text(_delta(s.loss_trend))
        best = Text(units.loss(s.best_loss), style="bold")
        lr = Text(units.lr(s.lr), style="bold")
        grad = Text(f"{s.grad_norm:.3f}" if s.grad_norm is not None else units.DASH, style="bold")
        speed = Text(units.rate(s.tokens_per_s), style="bold")
        seen = Text(units.si(s.tokens_seen) + (" tok" if s.tokens_seen is not None else ""), style="bold")
        elapsed = Text(units.duration(s.elapsed_s), style="bold")
        if s.state == "finished":
            eta = Text("done", style="bold green")
        elif s.state in ENDED_STATES:  # finished is handled above
            eta = Text(units.DASH, style="dim")
        else:
            eta = Text(units.duration(s.eta_s), style="bold")
        if wide:
            grid.add_row("Loss", loss, "best", best)
            grid.add_row("LR", lr, "grad", grad)
            grid.add_row("Speed", speed, "seen", seen)
            grid.add_row("Elapsed", elapsed, "ETA", eta)
            if s.mfu is not None:
                grid.add_row("MFU", Text(units.percent(100 * s.mfu, 1), style="bold"), "", "")
            if s.eval_loss is not None:
                ppl = f"{s.eval_ppl:.2f}" if s.eval_ppl is not None else units.DASH
                grid.add_row("Eval", Text(units.loss(s.eval_loss), style="bold"), "ppl", Text(ppl, style="bold"))
        else:
            grid.add_row("Loss", loss)
            grid.add_row("LR", lr)
            grid.add_row("Speed", speed)
            grid.add_row("Time", Text.assemble(elapsed, ("  ETA ", "dim"), eta))
            if s.eval_loss is not None:
                grid.add_row("Eval", Text(units.loss(s.eval_loss), style="bold"))
        return Group(top, bar, grid)
