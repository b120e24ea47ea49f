"""`cockpit data validate|stats|prepare`: find every bad line up front, look at the data, and turn
raw documents into deduplicated, filtered token shards the engine streams from.

Torch-free: reading and checking is ``engine.data.formats`` (the names of ``lines``, ``records``,
``detect``, ``summary`` and ``manifest``), preparing ``engine.data.prepare``.

Why this module is over 400 lines: it is one command group (validate, stats, preview, prepare),
each command the printing around a function of ``engine.data``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cockpit.cli.common import expand_files, fail

data_app = typer.Typer(help="Validate, inspect and prepare training data.", no_args_is_help=True, rich_markup_mode=None)

FORMAT_CHOICES = ("auto", "text", "pretrain", "instruct", "chat", "tool", "reasoning", "kd")
FORMAT_OPTION = typer.Option(
    "auto", "--format", help="Record format: " + "|".join(FORMAT_CHOICES) + " (auto: detected)."
)
TEXT_UNIT_OPTION = typer.Option(
    "auto",
    "--text-unit",
    help="What a document of a text file is: auto|line|paragraph|file "
    "(auto: paragraph when the file has blank-line separated blocks of several lines, "
    "else line).",
)
MAX_LINE_BYTES_OPTION = typer.Option(
    1 << 20,  # engine.data.lines.MAX_LINE_BYTES, not imported at start-up
    "--max-line-bytes",
    min=1,
    help="Longest line read, in bytes (a longer one is an error naming file:line, never read whole; "
    "the config's data.max_line_bytes).",
)
#: Errors and warnings printed per file (all are counted).
SHOWN_PROBLEMS = 20
SHOWN_WARNINGS = 5


def _format(value: str) -> str | None:
    if value not in FORMAT_CHOICES:
        fail(f"--format {value!r}: expected one of {', '.join(FORMAT_CHOICES)}")
    return None if value == "auto" else value


def _text_unit(value: str) -> str:
    from engine.data.formats import TEXT_UNITS

    if value not in TEXT_UNITS:
        fail(f"--text-unit {value!r}: expected one of {', '.join(TEXT_UNITS)}")
    return value


def _scan(path: Path, fmt: str | None, unit: str, max_line_bytes: int):
    from engine.data import formats

    try:
        return formats.scan(path, fmt, unit=unit, max_line_bytes=max_line_bytes)
    except formats.FormatError as exc:
        fail(str(exc))


def _documents(report: dict) -> str | None:
    """How a text file (a report or manifest source with ``text_unit``) is cut into documents,
    e.g. ``one document per line (auto: no blank line in the first 2,000 lines)``; None for JSONL."""
    from engine.data.formats import UnitChoice

    if "text_unit" not in report:
        return None
    return UnitChoice(report["text_unit"], report["text_unit_reason"]).describe()


def validate(
    paths: list[Path] = typer.Argument(..., help="Data files (text or JSONL) or shard directories."),
    fmt: str = FORMAT_OPTION,
    text_unit: str = TEXT_UNIT_OPTION,
    max_line_bytes: int = MAX_LINE_BYTES_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Check every line: bad UTF-8, broken JSON, missing or mistyped keys, empty samples, lines
    over --max-line-bytes.

    Prints `file:line: problem` for the first problems and a count per kind; exits 2 when any line
    is unusable, 0 when every record can be trained on (warnings such as duplicates included)."""
    from engine.data import formats

    wanted = _format(fmt)
    unit = _text_unit(text_unit)
    reports, bad = [], False
    problems: dict[str, list] = {}
    for path in paths:
        if path.is_dir():
            shards = formats.inspect_shards(path)
            reports.append(
                {
                    "path": str(path),
                    "format": "shards",
                    "ok": shards.ok,
                    "shards": shards.shards,
                    "tokens": shards.tokens,
                    "problems": [str(p) for p in shards.problems],
                }
            )
            bad |= not shards.ok
            continue
        if (why := formats.unreadable(path)) is not None:
            fail(why)
        summary = _scan(path, wanted, unit, max_line_bytes)
        report = summary.to_json()
        report["ok"] = summary.errors == 0
        reports.append(report)
        problems[str(path)] = summary.problems
        bad |= summary.errors > 0
    if as_json:
        typer.echo(json.dumps({"ok": not bad, "files": reports}, indent=1, ensure_ascii=False))
        raise typer.Exit(2 if bad else 0)
    for r in reports:
        if r["format"] == "shards":
            head = f"{r['path']}: shard directory, {r['shards']} shard(s), {r['tokens']:,} tokens"
            typer.echo(head + ("" if r["ok"] else f": {len(r['problems'])} problem(s)"))
            for p in r["problems"][:SHOWN_PROBLEMS]:
                typer.echo(f"  {p}", err=True)
            continue
        errors = [p for p in problems[r["path"]] if p.is_error]
        warnings = [p for p in problems[r["path"]] if not p.is_error]
        shown = errors[:SHOWN_PROBLEMS] + warnings[:SHOWN_WARNINGS]
        for p in sorted(shown, key=lambda p: p.line):
            typer.echo(str(p), err=True)
        more = sum(r["counts"].values()) - len(shown)
        if more > 0:
            typer.echo(
                f"... and {more:,} more (--json lists the first {formats.Summary.max_problems} of each kind)", err=True
            )
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(r["counts"].items(), key=lambda kv: -kv[1]))
        verdict = "ok" if r["ok"] else f"{r['invalid']:,} unusable record(s)"
        cut = _documents(r)
        typer.echo(
            f"{r['path']}: {r['format']}{f', {cut}' if cut else ''}, {r['records']:,} records, {r['valid']:,} valid: "
            f"{verdict}" + (f"; problems: {kinds}" if kinds else "")
        )
    raise typer.Exit(2 if bad else 0)


def stats(
    path: Path = typer.Argument(..., help="A data file (text or JSONL)."),
    tokenizer: Path | None = typer.Option(None, "--tokenizer", help="Tokenizer directory: token counts too."),
    fmt: str = FORMAT_OPTION,
    text_unit: str = TEXT_UNIT_OPTION,
    sample: int = typer.Option(20_000, "--sample", min=100, help="Records tokenized and scored (the first N)."),
    max_line_bytes: int = MAX_LINE_BYTES_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Records, characters, tokens, length histogram, exact duplicates and quality signals."""
    from engine.data import formats
    from engine.data.stats import data_stats

    if (why := formats.unreadable(path)) is not None:
        fail(why + ("; `cockpit data validate` checks a shard directory" if path.is_dir() else ""))
    wanted = _format(fmt)
    unit = _text_unit(text_unit)
    tok = None
    if tokenizer is not None:
        from engine.data.tokenizer import read_tokenizer

        try:
            tok = read_tokenizer(tokenizer)
        except ValueError as exc:
            fail(f"--tokenizer {exc}")
    try:
        report = data_stats(path, wanted, unit, tok, sample, max_line_bytes)
    except formats.FormatError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(report, indent=1, ensure_ascii=False))
        return
    _print_stats(report)


def _print_stats(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    lengths = r["lengths_chars"]
    table = Table(title=f"{r['path']} ({r['format']})", show_header=False, box=None, padding=(0, 2))
    if "text_unit" in r:
        table.add_row("documents", _documents(r))
    table.add_row("records", f"{r['records']:,} ({r['valid']:,} valid, {r['invalid']:,} invalid, {r['empty']:,} empty)")
    table.add_row(
        "characters",
        f"{r['chars']:,} (mean {lengths['mean']:,.0f} per record, p50 {lengths['p50']:,}, "
        f"p90 {lengths['p90']:,}, max {lengths['max']:,})",
    )
    table.add_row("exact duplicates", f"{r['duplicates']:,} ({r['duplicates'] / max(1, r['valid']):.1%})")
    if "tokens" in r:
        t = r["tokens"]
        tl = t["lengths"]
        table.add_row(
            "tokens",
            f"{'~' if t['estimated'] else ''}{t['total']:,} ({t['chars_per_token']} characters per "
            f"token; per record p50 {tl['p50']:,}, p90 {tl['p90']:,}, max {tl['max']:,})",
        )
    q = r.get("quality")
    if q:
        of = f" (first {q['records']:,} records)" if q["sampled"] else ""
        table.add_row("words per record", f"mean {q['words']['mean']:,.1f}, p90 {q['words']['p90']:,.0f}{of}")
        table.add_row("symbol ratio", f"mean {q['symbol_ratio']['mean']:.3f}, p90 {q['symbol_ratio']['p90']:.3f}")
        table.add_row(
            "repeated 5-grams", f"mean {q['dup_5gram_fraction']['mean']:.3f}, p90 {q['dup_5gram_fraction']['p90']:.3f}"
        )
        table.add_row(
            "top 2-gram share", f"mean {q['top_2gram_fraction']['mean']:.3f}, p90 {q['top_2gram_fraction']['p90']:.3f}"
        )
        drops = ", ".join(f"{k} {v:,}" for k, v in q["would_drop"].items()) or "none"
        table.add_row("default filters drop", drops)
    console.print(table)
    from engine.data.stats import length_histogram

    hist, unit = length_histogram(r)
    if hist:
        top = max(b["count"] for b in hist) or 1
        console.print(f"\nlength histogram ({unit} per record)")
        for b in hist:
            bar = "█" * max(0, round(30 * b["count"] / top))
            console.print(f"  {b['lo']:>8,}-{b['hi'] - 1:<8,} {bar} {b['count']:,}")


def prepare(
    inputs: list[str] = typer.Option(
        ...,
        "--input",
        help="Input files or globs (repeatable): text (documents "
        'by --text-unit), JSONL with "text", or fine-tuning JSONL.',
    ),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="Tokenizer directory (tokenizer.json)."),
    out: Path = typer.Option(..., "--out", help="Shard directory to write."),
    seq_len: int = typer.Option(..., "--seq-len", min=1, help="Sequence length of the run (train.seq_len)."),
    val_fraction: float = typer.Option(
        0.005, "--val-fraction", min=0.0, max=0.99, help="Documents held out for evaluation."
    ),
    near_dup: float = typer.Option(
        0.8,
        "--near-dup-threshold",
        min=0.0,
        max=1.0,
        help="Estimated Jaccard similarity from which a document is a near duplicate (0: off).",
    ),
    num_perm: int = typer.Option(128, "--minhash-perm", help="MinHash signature length (power of two, 8-1024)."),
    no_exact_dedup: bool = typer.Option(False, "--no-exact-dedup", help="Keep exact duplicates."),
    min_words: int = typer.Option(3, "--min-words", min=0, help="Drop documents with fewer words (0: off)."),
    max_words: int = typer.Option(100_000, "--max-words", min=0, help="Drop documents with more words (0: off)."),
    max_symbol_ratio: float = typer.Option(
        0.5, "--max-symbol-ratio", min=0.0, help="Drop above this symbol ratio (0: off)."
    ),
    max_repetition: float = typer.Option(
        0.3, "--max-repeated-5grams", min=0.0, help="Drop above this share of repeated word 5-grams (0: off)."
    ),
    max_top_bigram: float = typer.Option(
        0.2, "--max-top-2gram", min=0.0, help="Drop above this share of the top word 2-gram (0: off)."
    ),
    shard_tokens: int = typer.Option(100_000_000, "--shard-tokens", min=1, help="Tokens per shard file."),
    fmt: str = FORMAT_OPTION,
    text_unit: str = TEXT_UNIT_OPTION,
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Drop malformed lines instead of stopping."),
    max_line_bytes: int = MAX_LINE_BYTES_OPTION,
    debug: int = typer.Option(
        0,
        "--debug",
        min=0,
        help="First print N records as they will be trained on, the "
        "tokens the model does not learn from (prompts) dimmed.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON at the end."),
) -> None:
    """Deduplicate (exact and MinHash), filter, tokenize and pack documents into token shards.

    Re-running keeps the shards an interrupted run finished; the manifest is written last. A run
    that fails leaves no --out it created (and in one that was there, nothing it wrote)."""
    from engine.data.prepare import PrepareError, PrepareSettings
    from engine.data.prepare import prepare as run_prepare
    from engine.data.quality import QualityRules

    if num_perm & (num_perm - 1) or not 8 <= num_perm <= 1024:
        fail(f"--minhash-perm {num_perm}: expected a power of two from 8 to 1024")
    files = expand_files(inputs, "--input")
    if near_dup >= 1.0:
        fail("--near-dup-threshold must be below 1 (0 turns it off)")
    rules = QualityRules(
        min_words=min_words,
        max_words=max_words or None,
        max_symbol_ratio=max_symbol_ratio or None,
        max_dup_ngram_fraction=max_repetition or None,
        max_top_bigram_fraction=max_top_bigram or None,
    )
    settings = PrepareSettings(
        seq_len=seq_len,
        val_fraction=val_fraction,
        near_dedup_threshold=near_dup or None,
        num_perm=num_perm,
        exact_dedup=not no_exact_dedup,
        rules=rules,
        shard_tokens=shard_tokens,
        format=_format(fmt),
        skip_invalid=skip_invalid,
        text_unit=_text_unit(text_unit),
        max_line_bytes=max_line_bytes,
    )
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from engine.units import nbytes

    console = Console(stderr=True)
    if debug:
        _print_preview(console, files, tokenizer, debug, _format(fmt), settings)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=as_json or not console.is_terminal,
    ) as bar:
        task = bar.add_task("preparing", total=None, rate="", info="")

        def show(p) -> None:
            rate = f"{nbytes(p.bytes_done / max(p.elapsed_s, 1e-9))}/s" if p.elapsed_s else ""
            dropped = sum(p.dropped.values())
            bar.update(
                task,
                completed=p.bytes_done,
                total=p.bytes_total,
                rate=rate,
                description="replaying (finished shards kept)" if p.replaying else "preparing",
                info=f"{p.train.tokens + p.val.tokens:,} tokens, {p.shards} shard(s), {dropped:,} dropped",
            )

        try:
            manifest = run_prepare(files, tokenizer, out, settings, progress=show)
        except PrepareError as exc:
            bar.stop()
            fail(str(exc))
        except KeyboardInterrupt:
            from engine.data.prepare import STATE

            bar.stop()
            if (out / STATE).is_file():
                said = (
                    f"interrupted: the finished shards in {out} are kept; run the same command again to "
                    "continue (the manifest is written when it completes)"
                )
            else:
                said = f"interrupted before a shard was finished: nothing is kept (what it wrote to {out} is removed)"
            typer.echo(said, err=True)
            raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(manifest, indent=1))
        return
    docs = manifest["documents"]
    if manifest.get("skipped"):
        typer.echo(f"{out}: already prepared with these inputs and settings (manifest.json); nothing to do")
    drops = ", ".join(f"{k} {v:,}" for k, v in docs["dropped"].items()) or "none"
    elapsed = manifest.get("elapsed_s")
    typer.echo(
        f"{out}: {manifest['total_tokens']:,} training tokens in {len(manifest['shards'])} shard(s), "
        f"{manifest['val_tokens']:,} validation tokens ({manifest['dtype']}, seq_len {manifest['seq_len']})"
        + (f" in {elapsed:.1f} s" if elapsed else "")
    )
    typer.echo(
        f"documents: {docs['read']:,} read, {docs['train']:,} train, {docs['val']:,} validation; dropped: {drops}"
    )
    for source in manifest["sources"]:
        if "text_unit" in source:
            typer.echo(f"{source['path']}: {_documents(source)}")
    typer.echo(
        f"train on it: cockpit run CONFIG --set data.source=shards --set data.path={out} "
        f"--set tokenizer.path={manifest['tokenizer']['path']} --set train.seq_len={manifest['seq_len']}"
    )


def _print_preview(console, inputs: list[Path], tokenizer: Path, n: int, fmt: str | None, settings) -> None:
    """``--debug``: records as the shards hold them, what the model does not learn from dimmed."""
    from rich.text import Text

    from engine.data.prepare import PrepareError, preview

    try:
        samples = preview(inputs, tokenizer, n, fmt, settings.text_unit, settings.max_line_bytes)
    except (PrepareError, ValueError) as exc:
        fail(str(exc))
    for s in samples:
        console.print(
            Text(
                f"--- {s['path']}:{s['line']} ({s['format']}): {s['tokens']} tokens, {s['learnt']} learnt", style="bold"
            ),
            soft_wrap=True,
        )
        text = Text()
        for chunk, learnt in s["runs"]:
            text.append(chunk, style="" if learnt else "dim")
        console.print(text, soft_wrap=True)
    if samples:
        console.print(Text("(dim: context the model sees but does not learn from)", style="italic"))


def register(app: typer.Typer) -> None:
    data_app.command("validate")(validate)
    data_app.command("stats")(stats)
    data_app.command("prepare")(prepare)
    app.add_typer(data_app, name="data")
