"""A length histogram: one bar per range, ``lo-hi ████ count``, scaled to the widget's width."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class LengthHistogram(Static):
    """Shows ``[{"lo", "hi" (exclusive), "count"}, ...]`` bins (``engine.data.summary.histogram``)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.bins: list[dict[str, int]] = []
        self.unit = ""

    def show(self, bins: list[dict[str, int]], unit: str) -> None:
        """Draw ``bins`` of lengths in ``unit`` (``tokens``, ``characters``)."""
        self.bins, self.unit = bins, unit
        self.refresh(layout=True)

    def render(self) -> Text:
        if not self.bins:
            return Text("no lengths yet", style="dim")
        labels = [f"{b['lo']:,}-{b['hi'] - 1:,}" for b in self.bins]
        counts = [f"{b['count']:,}" for b in self.bins]
        label_w, count_w = max(map(len, labels)), max(map(len, counts))
        room = max(4, self.size.width - label_w - count_w - 3)
        top = max(b["count"] for b in self.bins) or 1
        text = Text(f"{self.unit} per record\n", style="bold")
        for label, count, b in zip(labels, counts, self.bins):
            text.append(f"{label:>{label_w}} ")
            text.append("█" * round(room * b["count"] / top), style="green")
            text.append(f" {count:>{count_w}}\n")
        text.rstrip()
        return text
