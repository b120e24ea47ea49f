"""The wizard's tokenizer step: use a tokenizer directory (inspected as ``cockpit tokenizer inspect``
does) or train one on the draft's data (as ``cockpit tokenizer train`` does), in a worker.

Sets ``tokenizer.path`` (and ``tokenizer.vocab_size``, the size to train) in the draft, and finds
``vocab_size`` for the preset step. The demo draft's tokenizer is trained at launch when missing:
nothing to do here. Keys: ``ctrl+o`` inspect the directory typed (or enter in its field),
``ctrl+t`` train on the data, ``ctrl+x`` cancel a training; the wizard's keys besides.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, ProgressBar, Static

from cockpit.screens.wizard_step import WizardStep

#: Records of the data measured for characters per token.
SAMPLE_RECORDS = 2000
#: Tokens of a sample encoding shown.
SHOWN_TOKENS = 24


class TrainProgress(Message):
    def __init__(self, done: int, total: int | None) -> None:
        super().__init__()
        self.done, self.total = done, total


class Inspected(Message):
    """A tokenizer was described (``report``), or could not be (``error``)."""

    def __init__(self, path: Path, report: dict | None, error: str | None = None, trained: str = "") -> None:
        super().__init__()
        self.path, self.report, self.error, self.trained = path, report, error, trained


def render_report(report: dict) -> Text:
    """The inspection as the screen shows it: size, special tokens, characters per token, encodings."""
    special = report["special_tokens"]
    out = Text()
    out.append(f"{report['path']}", style="bold")
    out.append(f": {report['model']} tokenizer, {report['vocab_size']:,} tokens\n")
    out.append("special tokens: " + ", ".join(f"{role} {name}" for role, name in special.items() if name))
    if report["added_special_tokens"]:
        out.append("; added: " + ", ".join(report["added_special_tokens"]))
    out.append(f"; chat template: {'yes' if report['chat_template'] else 'no'}\n")
    if report["padding_truncation"]:
        out.append(report["padding_truncation"] + "\n", style="yellow")
    if report["eos_missing"]:
        out.append("no end-of-text token: the engine needs one (eos_token in tokenizer_config.json)\n", style="red")
    ratio = report["sample"]
    out.append(
        f"{ratio['chars_per_token']:.2f} characters per token on {ratio['of']} ({ratio['records']:,} records)\n",
        style="bold",
    )
    for enc in report["encodings"]:
        flag = "" if enc["round_trip"] else " (does not decode back)"
        out.append(f"\n{enc['text']!r}", style="cyan")
        out.append(f": {len(enc['ids'])} tokens{flag}\n", style="dim")
        tokens = enc["tokens"][:SHOWN_TOKENS]
        out.append("  " + " | ".join(tokens) + (" ..." if len(enc["tokens"]) > SHOWN_TOKENS else "") + "\n")
    return out


class TokenizerScreen(WizardStep):
    """Step 3: the tokenizer, inspected or trained."""

    STEP = "tokenizer"
    BINDINGS = [
        Binding("ctrl+o", "inspect", "Inspect", priority=True),
        Binding("ctrl+t", "train", "Train", priority=True),
        Binding("ctrl+x", "cancel_training", "Cancel", priority=True),
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: Set to end the training running in its child process (ctrl+x, leaving the step).
        self.cancel_training = threading.Event()

    def compose_step(self) -> ComposeResult:
        yield Static(self.data_note(), id="tok-note")
        with Horizontal(classes="tok-row"):
            yield Label("Tokenizer directory", classes="tok-label")
            yield Input(str(self.draft.get("tokenizer.path", "")), id="tok-path")
        with Horizontal(classes="tok-row"):
            yield Label("Vocabulary to train", classes="tok-label")
            yield Input(str(self.draft.get("tokenizer.vocab_size", 1024)), id="tok-vocab", type="integer")
            yield Label("", id="tok-vocab-error")
        yield ProgressBar(id="tok-progress", show_eta=False)
        with VerticalScroll(id="tok-report-box"):
            yield Static("", id="tok-report")

    def on_mount(self) -> None:
        self.query_one("#tok-progress").display = False
        path = self.tokenizer_path
        if (path / "tokenizer.json").is_file():
            self.inspect(path)
        elif self.draft.get("data.source") in ("demo", None) and not self.facts.data_dir:
            self.found(vocab_size=self.vocab_to_train)  # the demo's tokenizer, trained at launch
            self.say(f"{path}: no tokenizer yet; the demo trains one of {self.vocab_to_train:,} tokens at launch.")
        else:
            self.say(f"{path}: no tokenizer yet: ctrl+t trains one on the data, or type the directory of one.")

    # --- what the draft says ----------------------------------------------------------------

    @property
    def tokenizer_path(self) -> Path:
        return Path(str(self.draft.get("tokenizer.path") or "data/demo/tokenizer"))

    @property
    def vocab_to_train(self) -> int:
        return int(self.draft.get("tokenizer.vocab_size") or 1024)

    def data_note(self) -> str:
        source, path = self.draft.get("data.source") or "demo", self.draft.get("data.path")
        if self.facts.data_dir:
            return (
                f"Data: the data files of {escape(self.facts.data_dir)} (not prepared yet). Train a tokenizer on "
                "them, or use an existing one; then prepare the shards in the Data step."
            )
        if source == "demo":
            return (
                "Data: the built-in demo corpus. Its tokenizer is trained at launch when missing: "
                "nothing to do here (ctrl+n)."
            )
        if source == "shards":
            return f"Data: the prepared shards in {escape(str(path))}, tokenized with the tokenizer below."
        return f"Data: {escape(str(path))} ({source}). Train a tokenizer on it, or use an existing one."

    def training_files(self) -> list[Path] | str:
        """The data to train on, or why there is none."""
        if self.facts.data_dir:  # a directory of files chosen in the data step, not prepared yet
            from engine.data.sources import data_files

            return data_files(self.facts.data_dir) or f"{self.facts.data_dir}: no data files left in it"
        source, path = self.draft.get("data.source") or "demo", Path(str(self.draft.get("data.path") or ""))
        if source == "shards":
            return "the data is prepared shards: they were tokenized already; use their tokenizer"
        if not path.is_file():
            if source == "demo":
                return "the demo corpus is generated at launch, and its tokenizer trained then"
            return f"data.path {path}: not found; pick the data in the Data step"
        return [path]

    # --- edits ------------------------------------------------------------------------------

    @on(Input.Changed, "#tok-vocab")
    def vocab_changed(self, event: Input.Changed) -> None:
        try:
            value = int(event.value)
        except ValueError:
            self.query_one("#tok-vocab-error", Label).update("[red]a whole number[/red]")
            return
        draft = self.draft.set("tokenizer.vocab_size", value)
        problem = draft.check().problem_at("tokenizer.vocab_size")
        self.query_one("#tok-vocab-error", Label).update(f"[red]{escape(problem)}[/red]" if problem else "")
        if not problem and value != self.draft.get("tokenizer.vocab_size"):
            self.change(draft)

    @on(Input.Submitted, "#tok-path")
    def path_submitted(self) -> None:
        self.action_inspect()

    def action_inspect(self) -> None:
        typed = self.query_one("#tok-path", Input).value.strip()
        if not typed:
            self.say("[red]type the directory of a tokenizer (tokenizer.json)[/red]")
            return
        self.inspect(Path(typed))

    def action_train(self) -> None:
        files = self.training_files()
        if isinstance(files, str):
            self.say(f"[red]cannot train here: {escape(files)}[/red]")
            return
        if self.draft.check().problem_at("tokenizer.vocab_size"):
            self.say("[red]fix the vocabulary size first[/red]")
            return
        out = Path(self.query_one("#tok-path", Input).value.strip() or self.tokenizer_path)
        if out.exists() and not out.is_dir():
            self.say(f"[red]{escape(str(out))}: exists and is not a directory; type another[/red]")
            return
        bar = self.query_one("#tok-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.say(f"training a tokenizer of {self.vocab_to_train:,} tokens on {files[0]} ... (ctrl+x cancels)")
        self.train(files, out, self.vocab_to_train)

    def action_cancel_training(self) -> None:
        running = [w for w in self.workers if w.group == "tokenizer-train" and w.is_running]
        if running:
            self.cancel_training.set()
            self.say("cancelling: the training stops now; nothing is written")

    def on_unmount(self) -> None:
        self.cancel_training.set()  # leaving the step ends a training

    # --- workers (post messages only) -------------------------------------------------------

    @work(thread=True, exclusive=True, group="tokenizer-inspect")
    def inspect(self, path: Path, trained: str = "") -> None:
        self.post_message(self._describe(path, trained))

    def _describe(self, path: Path, trained: str = "") -> Inspected:
        from cockpit.tokenizer_info import describe_tokenizer

        files = self.training_files()
        sample = files[0] if isinstance(files, list) else None
        try:
            return Inspected(
                path, describe_tokenizer(path, sample=sample, sample_records=SAMPLE_RECORDS), None, trained
            )
        except ValueError as exc:
            return Inspected(path, None, str(exc))

    @work(thread=True, exclusive=True, group="tokenizer-train")
    def train(self, files: list[Path], out: Path, vocab_size: int) -> None:
        """Train in a child process (``cockpit.offload``): the trainer never holds this app's interpreter
        lock, and ctrl+x ends it at any moment."""
        from cockpit.offload import Cancelled, ChildDied, run_in_child
        from cockpit.tokenizer_info import train_reporting

        total = sum(f.stat().st_size for f in files) or None
        self.cancel_training = cancel = threading.Event()
        t0 = time.perf_counter()
        try:
            size, _ = run_in_child(
                train_reporting,
                (files, out, vocab_size),
                lambda done: self.post_message(TrainProgress(done, total)),
                cancel,
            )
        except Cancelled:
            self.post_message(Inspected(out, None, "training cancelled; nothing was written"))
            return
        except (OSError, ValueError, ChildDied) as exc:
            self.post_message(Inspected(out, None, f"{out}: cannot train the tokenizer ({exc})"))
            return
        short = "" if size == vocab_size else f" (asked for {vocab_size:,}: the text has no more pairs to merge)"
        self.post_message(self._describe(out, f"trained {size:,} tokens{short} in {time.perf_counter() - t0:.1f} s"))

    # --- results ----------------------------------------------------------------------------

    def on_train_progress(self, message: TrainProgress) -> None:
        bar = self.query_one("#tok-progress", ProgressBar)
        if message.total:
            bar.update(total=message.total, progress=min(message.done, message.total))

    def on_inspected(self, message: Inspected) -> None:
        self.query_one("#tok-progress").display = False
        if message.report is None:
            self.say(f"[red]{escape(message.error or '')}[/red]")
            return
        report = message.report
        self.query_one("#tok-report", Static).update(render_report(report))
        self.query_one("#tok-path", Input).value = str(message.path)
        if self.draft.get("tokenizer.path") != str(message.path):
            self.change(self.draft.set("tokenizer.path", str(message.path)))
        self.found(vocab_size=report["vocab_size"])
        done = f"{message.trained}; " if message.trained else ""
        self.say(f"{done}tokenizer.path is {escape(str(message.path))} ({report['vocab_size']:,} tokens)")
