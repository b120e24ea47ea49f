"""The wizard's data step: pick the training data, validate it, look at it, and prepare shards.

Pick a text or JSONL file (or a prepared shard directory: one with ``manifest.json``) from the
tree rooted at the working directory, type its path, or take the built-in demo corpus. The draft
follows the choice (``data.source``, ``data.path``, ``data.text_unit``). A directory without a
manifest that holds data files (``engine.data.sources.data_files``) is one corpus of them: they are
validated in turn, counted together, previewed from the first, and ``p`` prepares them all into one
shard directory; the draft keeps its data until then (the engine trains a directory from its
shards). A file (or each file of a directory) is then validated
in a worker with the scanner of ``cockpit data validate`` (live counts, then every ``file:line``
problem kept), previewed (chat formats rendered as they will be trained, the context dimmed) and
summarised as ``cockpit data stats`` does (with a length histogram). ``p`` prepares shards as
``cockpit data prepare`` does, with a progress bar; ``x`` cancels (the finished shards stay, and
``p`` again resumes from them); when it completes the draft trains on the shards.

Keys: ``enter`` on a file of the tree (or in the path box) chooses it, ``u`` uses the highlighted
directory (prepared shards, or a directory of data files), ``m`` the demo corpus, ``v`` validates again, ``p`` prepares,
``x`` cancels the preparation, ``t`` goes to the tokenizer step; ``1``-``4`` show the problems,
preview, stats and prepare tabs; plus the wizard's ``ctrl+n``, ``escape``, ``ctrl+s``.

Why this module is over 400 lines: it is one screen with a choice of data (file, directory, shards,
demo) and four tabs that show what its workers find; the work itself is ``cockpit.data_work``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DirectoryTree, Input, ProgressBar, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from cockpit.data_work import inspect_files, prepare_files, scan_files
from cockpit.screens.wizard_step import Navigate, WizardStep
from cockpit.widgets.data_views import preview_text, problems_text, stats_text
from cockpit.widgets.histogram import LengthHistogram
from cockpit.wizard import starting_draft

#: Where prepared shards go: ``data/shards/<the input's stem>`` under the working directory.
SHARDS_DIR = Path("data/shards")


class WorkerNews(Message):
    """A worker of choice ``choice`` says ``kind`` (``scan``, ``scanned``, ``inspected``,
    ``failed``; ``prepare``, ``prepared``, ``unprepared``) with ``data``; ``news_<kind>`` takes it."""

    def __init__(self, choice: int, kind: str, data: Any) -> None:
        super().__init__()
        self.choice = choice
        self.kind = kind
        self.data = data


class DataScreen(WizardStep):
    """Step 2: the training data."""

    STEP = "data"
    BINDINGS = [
        Binding("u", "use_directory", "Use dir"),
        Binding("m", "demo", "Demo"),
        Binding("v", "validate", "Validate"),
        Binding("p", "prepare", "Prepare"),
        Binding("x", "cancel", "Cancel"),
        Binding("t", "tokenizer", "Tokenizer"),
        Binding("1", "tab('data-problems-tab')", "Problems", show=False),
        Binding("2", "tab('data-preview-tab')", "Preview", show=False),
        Binding("3", "tab('data-stats-tab')", "Stats", show=False),
        Binding("4", "tab('data-prepare-tab')", "Prepare", show=False),
    ]

    def __init__(self, *args, root: Path | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.root = root or Path(".")
        """Where the tree starts (the working directory)."""
        self.choice = 0
        """Which choice the workers' news is about (a new choice ignores the old workers)."""
        self.summaries: list | None = None
        """The validation of each chosen file (``engine.data.summary.Summary``), when done."""
        self.corpus: Path | None = None
        """The chosen directory of data files, until they are prepared (None for a file)."""
        self.files: list[Path] = []
        """The data files of ``corpus``."""
        self.stats: dict | None = None
        """The stats report of the chosen file, when done."""
        self.manifest: dict | None = None
        """The manifest of the last preparation, when done."""
        self.cancel_prepare = threading.Event()
        """Set to stop the preparation running."""
        self.preparing = False
        """Whether a preparation is running."""

    def compose_step(self) -> ComposeResult:
        with Horizontal(id="data-main"):
            with Vertical(id="data-pick"):
                yield Input(placeholder="path of a data file or directory", id="data-path")
                yield DirectoryTree(self.root, id="data-tree")
            with Vertical(id="data-right"):
                yield Static("", id="data-summary")
                with TabbedContent(id="data-tabs"):
                    with TabPane("1 Problems", id="data-problems-tab"):
                        yield VerticalScroll(Static("", id="data-problems"))
                    with TabPane("2 Preview", id="data-preview-tab"):
                        yield VerticalScroll(Static("", id="data-preview"))
                    with TabPane("3 Stats", id="data-stats-tab"):
                        with VerticalScroll():
                            yield Static("", id="data-stats")
                            yield LengthHistogram(id="data-histogram")
                    with TabPane("4 Prepare", id="data-prepare-tab"):
                        yield ProgressBar(id="data-progress", show_eta=False)
                        yield Static("", id="data-prepare")

    def on_mount(self) -> None:
        self.show_choice()
        if self.facts.data_dir is not None and Path(self.facts.data_dir).is_dir():
            self.choose_directory(Path(self.facts.data_dir))  # chosen before, not prepared yet
        elif self.inputs:
            self.start_scan()
        tree = self.query_one("#data-tree", DirectoryTree)
        tree.root.set_label(Text("./ (the working directory)", style="bold"))
        tree.focus()

    # --- the choice -------------------------------------------------------------------------

    @property
    def data_path(self) -> Path | None:
        path = self.draft.get("data.path")
        return Path(path) if path else None

    @property
    def inputs(self) -> list[Path]:
        """The chosen data files to read: the directory's, or the draft's data file (else none)."""
        path = self.data_path
        if self.files:
            return self.files
        return [path] if self.draft.get("data.source") != "shards" and path is not None and path.is_file() else []

    @property
    def text_unit(self) -> str:
        """How text files are cut into documents: the draft's, ``auto`` (each its own) for a directory."""
        return "auto" if self.files else self.draft.get("data.text_unit") or "auto"

    def show_choice(self, counts: str = "") -> None:
        text = Text()
        if self.corpus is not None:
            others = sum(1 for p in self.corpus.iterdir()) - len(self.files)
            text.append("directory", style="bold")
            text.append(f"  {_relative(self.corpus)}: {len(self.files)} data file(s), {others} other(s) ignored")
        else:
            text.append(f"{self.draft.get('data.source', 'demo')}", style="bold")
            text.append(f"  {self.draft.get('data.path', '')}")
        if counts:
            text.append(f"\n{counts}")
        self.query_one("#data-summary", Static).update(text)

    def choose(self, path: Path) -> None:
        """Take ``path`` (a file, or a directory of prepared shards) as the training data."""
        from engine.data import formats

        shown = _relative(path)
        if path.is_dir():
            if not (path / "manifest.json").is_file():
                self.choose_directory(path)
                return
            shards = formats.inspect_shards(path)
            self.new_choice({"data.source": "shards", "data.path": shown, "data.text_unit": None})
            if shards.ok:
                self.found(tokens_available=shards.tokens, data_problems=0)
                self.show_choice(f"{shards.shards} shard(s), {shards.tokens:,} tokens")
                self.say(f"training on the prepared shards in {shown}")
            else:
                self.show_problems([str(p) for p in shards.problems], len(shards.problems))
                self.found(data_problems=len(shards.problems))
                self.say(f"error: {shown}: {len(shards.problems)} problem(s) in the shard directory (tab 1)")
            return
        if (why := formats.unreadable(path)) is not None:
            self.say(f"error: {why}")
            return
        detection = formats.detect_format(path)
        if detection.format is None:
            self.say(f"error: {detection.error(shown)}")
            return
        if detection.format == "text":
            changes = {"data.source": "text", "data.path": shown, "data.text_unit": "auto"}
        else:
            changes = {"data.source": "jsonl", "data.path": shown, "data.text_unit": None}
        self.new_choice(changes)
        self.start_scan()

    def choose_directory(self, path: Path) -> None:
        """Take the data files of ``path`` as one corpus (the draft keeps its data until ``p``)."""
        from engine.data.sources import DATA_SUFFIXES, data_files

        path = Path(_relative(path))  # what the status line and the facts name
        files = data_files(path)
        if not files:
            self.say(
                f"error: {_relative(path)}: no data files ({', '.join(DATA_SUFFIXES)}) and no manifest.json; "
                "choose a data file or a directory of them"
            )
            return
        self.new_choice({}, corpus=path, files=files)
        self.start_scan()

    def new_choice(self, changes: dict, corpus: Path | None = None, files: list[Path] | None = None) -> None:
        self.choice += 1
        self.cancel_prepare.set()  # a preparation of the data chosen before stops
        self.preparing = False
        self.summaries = self.stats = self.manifest = None
        self.corpus, self.files = corpus, files or []
        if changes:
            self.change(self.draft.update(changes))
        if self.facts.data_dir != (corpus and str(corpus)):
            self.found(data_dir=corpus and str(corpus))
        self.show_choice()
        for widget in ("#data-problems", "#data-preview", "#data-stats", "#data-prepare"):
            self.query_one(widget, Static).update("")
        self.query_one("#data-histogram", LengthHistogram).show([], "")

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.choose(Path(event.path))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            return
        path = Path(value).expanduser()
        if not path.exists():
            self.say(f"error: {value}: no such file or directory; type the path of a data file")
            return
        self.choose(path)
        self.query_one("#data-tree").focus()  # the step's keys work again

    def action_use_directory(self) -> None:
        node = self.query_one("#data-tree", DirectoryTree).cursor_node
        if node is None or node.data is None:
            return
        path = Path(node.data.path)
        self.choose(path if path.is_dir() else path.parent)

    def action_demo(self) -> None:
        demo = starting_draft()
        self.new_choice({key: demo.get(key) for key in ("data.source", "data.path", "data.demo")})
        self.found(data_problems=0)
        self.say("the built-in demo corpus: generated at launch, with its tokenizer")
        if self.inputs:
            self.start_scan()

    def action_tokenizer(self) -> None:
        self.post_message(Navigate("tokenizer"))

    def action_tab(self, tab: str) -> None:
        self.query_one("#data-tabs", TabbedContent).active = tab

    # --- validate, preview, stats -----------------------------------------------------------

    def action_validate(self) -> None:
        if not self.inputs:
            self.say("nothing to validate: choose a data file first")
            return
        self.start_scan()

    def start_scan(self) -> None:
        self.say(f"validating {self.label}…")
        self.scan_worker(self.choice, self.inputs, self.text_unit)

    @property
    def label(self) -> str:
        """The chosen data as the status line names it."""
        if self.corpus is not None:
            return f"the {len(self.files)} data files of {_relative(self.corpus)}"
        return _relative(self.inputs[0]) if self.inputs else ""

    def news_of(self, choice: int) -> Callable[[str, Any], None]:
        """What a worker of choice ``choice`` reports with: a ``WorkerNews`` message to this screen."""
        return lambda kind, data: self.post_message(WorkerNews(choice, kind, data))

    @work(thread=True, exclusive=True, group="scan")
    def scan_worker(self, choice: int, paths: list[Path], unit: str) -> None:
        worker = get_current_worker()
        news = self.news_of(choice)
        summaries = scan_files(paths, unit, news, lambda: not worker.is_cancelled and choice == self.choice)
        if summaries is not None:
            fmt = summaries[0].format if len(paths) == 1 else None
            inspect_files(paths, unit, fmt, self.tokenizer_dir, news)

    @property
    def tokenizer_dir(self) -> Path | None:
        """The draft's tokenizer directory when a tokenizer is there, else None."""
        path = self.draft.get("tokenizer.path")
        return Path(path) if path and (Path(path) / "tokenizer.json").is_file() else None

    # --- prepare ----------------------------------------------------------------------------

    def action_prepare(self) -> None:
        inputs = self.inputs
        if not inputs or (not self.files and self.draft.get("data.source") not in ("text", "jsonl")):
            self.say("prepare needs a data file: choose one first (the demo and shards need no preparing)")
            return
        if self.preparing:
            self.say("already preparing: x cancels")
            return
        if self.tokenizer_dir is None:
            self.say(
                f"no tokenizer at {self.draft.get('tokenizer.path')} yet: press t to train one in the "
                "tokenizer step, then come back and press p"
            )
            return
        out = SHARDS_DIR / (self.corpus.name if self.corpus is not None else inputs[0].stem)
        self.action_tab("data-prepare-tab")
        self.query_one("#data-progress", ProgressBar).update(total=None, progress=0)
        self.say(f"preparing {out}… (x cancels; the finished shards are kept)")
        self.cancel_prepare = threading.Event()
        self.preparing = True
        self.prepare_worker(self.choice, inputs, out, self.cancel_prepare)

    def action_cancel(self) -> None:
        if not self.preparing:
            self.say("nothing to cancel: no preparation is running")
            return
        self.cancel_prepare.set()
        self.say("cancelling…")

    def on_unmount(self) -> None:
        self.cancel_prepare.set()  # leaving the step stops the preparation; p resumes it

    @work(thread=True, exclusive=True, group="prepare")
    def prepare_worker(self, choice: int, inputs: list[Path], out: Path, cancel: threading.Event) -> None:
        seq_len = int(self.draft.get("train.seq_len") or 128)
        prepare_files(
            inputs, self.tokenizer_dir, out, seq_len, self.text_unit, self.label, self.news_of(choice), cancel
        )

    # --- news from the workers --------------------------------------------------------------

    def on_worker_news(self, news: WorkerNews) -> None:
        if news.choice != self.choice:
            return  # about data chosen before
        handler = getattr(self, f"news_{news.kind}")
        handler(news.data)

    def news_failed(self, message: str) -> None:
        self.say(f"error: {message}")

    def news_unprepared(self, message: str) -> None:
        self.preparing = False
        self.say(message)

    def news_scan(self, counts: tuple[int, int, int]) -> None:
        records, invalid, lines = counts
        self.show_choice(f"validating: {lines:,} lines, {records:,} records, {invalid:,} with problems")

    def news_scanned(self, summaries: list) -> None:
        self.summaries = summaries
        summary = summaries[0]
        records, valid, invalid = (sum(getattr(s, key) for s in summaries) for key in ("records", "valid", "invalid"))
        if self.corpus is not None:
            what = ", ".join(sorted({s.format for s in summaries}))
        else:
            what = summary.format + (f", {summary.unit.describe()}" if summary.unit else "")
        self.show_choice(f"{what}: {records:,} records, {valid:,} valid, {invalid:,} unusable")
        errors = [p for s in summaries for p in s.problems if p.is_error]
        warnings = [p for s in summaries for p in s.problems if not p.is_error]
        self.show_problems([str(p) for p in errors + warnings], sum(sum(s.counts.values()) for s in summaries))
        self.found(data_problems=invalid)
        unusable = f"{invalid:,} unusable record(s): see tab 1; p prepares without them"
        if self.corpus is not None:
            self.say(
                (f"{unusable}; " if invalid else "")
                + f"a directory of {len(self.files)} files: press p to prepare shards "
                "(the engine trains a directory from its shards)"
            )
        elif invalid:
            self.say(unusable)
        elif summary.format not in ("text", "pretrain"):
            self.say(f"valid {summary.format} records: they train from prepared shards, press p to prepare them")
        else:
            self.say("valid: every record can be trained on (p prepares shards)")
        if invalid:
            self.action_tab("data-problems-tab")

    def show_problems(self, lines: list[str], total: int) -> None:
        self.query_one("#data-problems", Static).update(problems_text(lines, total))

    def news_inspected(self, found: tuple[list[dict], dict]) -> None:
        samples, stats = found
        self.stats = stats
        self.query_one("#data-preview", Static).update(preview_text(samples))
        self.query_one("#data-stats", Static).update(stats_text(stats))
        from engine.data.stats import length_histogram

        self.query_one("#data-histogram", LengthHistogram).show(*length_histogram(stats))
        if "tokens" in stats:
            self.found(tokens_available=stats["tokens"]["total"])

    def news_prepare(self, p) -> None:
        bar = self.query_one("#data-progress", ProgressBar)
        bar.update(total=max(1, p.bytes_total), progress=p.bytes_done)
        dropped = sum(p.dropped.values())
        what = "replaying (finished shards kept)" if p.replaying else "preparing"
        self.query_one("#data-prepare", Static).update(
            f"{what}: {p.documents:,} documents, {p.train.tokens + p.val.tokens:,} tokens, "
            f"{p.shards} shard(s), {dropped:,} dropped"
        )

    def news_prepared(self, done: tuple[Path, dict]) -> None:
        out, manifest = done
        self.preparing = False
        self.manifest = manifest
        self.query_one("#data-progress", ProgressBar).update(total=1, progress=1)
        docs = manifest["documents"]
        drops = ", ".join(f"{k} {v:,}" for k, v in docs["dropped"].items()) or "none"
        self.query_one("#data-prepare", Static).update(
            f"{out}: {manifest['total_tokens']:,} training tokens in {len(manifest['shards'])} shard(s), "
            f"{manifest['val_tokens']:,} validation tokens\n"
            f"documents: {docs['read']:,} read, {docs['train']:,} train, {docs['val']:,} validation; dropped: {drops}"
        )
        self.change(self.draft.update({"data.source": "shards", "data.path": str(out), "data.text_unit": None}))
        self.corpus, self.files = None, []  # the draft trains on the shards now
        self.found(tokens_available=manifest["total_tokens"], data_dir=None)
        self.show_choice(f"{manifest['total_tokens']:,} training tokens")
        self.say(f"prepared: the run trains on the shards in {out} (ctrl+n: tokenizer)")


def _relative(path: Path) -> str:
    """``path`` relative to the working directory when it is under it (what the draft holds)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
