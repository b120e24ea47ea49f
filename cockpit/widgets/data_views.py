"""What the wizard's data step shows of a data file, as Rich text: its problems, a preview of its
records as they will be trained (context dimmed) and its stats. Pure functions of the plain dicts
and strings ``engine.data`` reports (``prepare.preview``, ``stats.data_stats``)."""

from __future__ import annotations

from rich.text import Text


def problems_text(lines: list[str], total: int) -> Text:
    """``file:line: problem`` lines (errors red, duplicates yellow) and how many more were counted."""
    if not lines:
        return Text("no problems", style="green")
    text = Text()
    for line in lines:
        text.append(line + "\n", style="yellow" if ": duplicate of" in line else "red")
    if total > len(lines):
        text.append(f"… and {total - len(lines):,} more", style="dim")
    return text


def preview_text(samples: list[dict]) -> Text:
    """Records as ``engine.data.prepare.preview`` gives them: a heading each, then its runs, what the
    model does not learn from dimmed."""
    text = Text()
    for s in samples:
        tokens = f", {s['tokens']} tokens, {s['learnt']} learnt" if s["tokens"] is not None else ""
        text.append(f"line {s['line']} ({s['format']}{tokens})\n", style="bold")
        for chunk, learnt in s["runs"]:
            text.append(chunk, style="" if learnt else "dim")
        text.append("\n" if text.plain.endswith("\n") else "\n\n")
    text.append("dim: context the model sees but does not learn from", style="italic dim")
    return text


def stats_text(r: dict) -> Text:
    """The figures of an ``engine.data.stats.data_stats`` report, one per line."""
    lengths = r["lengths_chars"]
    text = Text()
    text.append(
        f"records      {r['records']:,} ({r['valid']:,} valid, {r['invalid']:,} invalid, {r['empty']:,} empty)\n"
    )
    text.append(
        f"characters   {r['chars']:,} (mean {lengths['mean']:,.0f}, p50 {lengths['p50']:,}, p90 {lengths['p90']:,})\n"
    )
    text.append(f"duplicates   {r['duplicates']:,} exact\n")
    if "tokens" in r:
        t = r["tokens"]
        text.append(
            f"tokens       {'~' if t['estimated'] else ''}{t['total']:,} ({t['chars_per_token']} chars/token)\n"
        )
    q = r.get("quality")
    if q:
        drops = ", ".join(f"{k} {v:,}" for k, v in q["would_drop"].items()) or "none"
        text.append(f"filters drop {drops}\n")
    return text
