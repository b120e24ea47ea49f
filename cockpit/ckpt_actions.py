"""The work the checkpoint viewer runs on one checkpoint (verify, evaluate, export, sample, upload),
each in a child process (``cockpit.offload.run_in_child``), so neither torch nor a long hash ever
runs in the app's process.

An action names its function as ``"module:function"``: the module is imported in the child only, so
the app never imports the torch stack for it. The function is called with the checkpoint directory
(and the action's keyword arguments); one that takes a ``progress`` argument gets a callable whose
values come back as progress. Its result goes through the action's ``summarize`` to an
:class:`ActionOutcome` (ok or not, one line, details). An action that needs an answer first (the
data to evaluate on, where to export, a prompt) says so with a :class:`Question`; the answer becomes
one keyword argument. Adding an action to the viewer is an entry in :data:`ACTIONS` and a binding
``Binding("e", "checkpoint_action('evaluate')", "Evaluate")``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ActionOutcome:
    """What came of an action: ``ok``, a one-line ``summary``, and ``details`` lines for its panel."""

    ok: bool
    summary: str
    details: tuple[str, ...] = ()


def _plain(result: Any) -> ActionOutcome:
    return ActionOutcome(True, "done", (str(result),) if result is not None else ())


@dataclass(frozen=True)
class Question:
    """What an action asks before it runs; the answer is passed as the keyword argument ``key``."""

    text: str
    """The question."""
    key: str
    """The keyword argument the answer becomes."""
    note: str = ""
    """What a blank answer means, shown under the input."""
    default: Callable[[Path, int], str] | None = None
    """(run directory, step) -> the answer the input starts with."""
    blank: Any = None
    """The argument's value for a blank answer (None: the function's own default)."""
    required: bool = False
    """A blank answer cancels the action instead."""

    def argument(self, answer: str) -> dict[str, Any]:
        """The keyword arguments of ``answer`` (already stripped); {} for a blank one without ``blank``."""
        if answer:
            return {self.key: answer}
        return {} if self.blank is None else {self.key: self.blank}


@dataclass(frozen=True)
class CheckpointAction:
    """One piece of work on a checkpoint directory."""

    name: str
    """Its name in messages and the ``checkpoint_action`` binding (verify, evaluate, ...)."""
    title: str
    """How the viewer names it while it runs and in its result (Verify, Evaluate, ...)."""
    target: str
    """``"module:function"``, called in the child as ``function(ckpt_dir, **kwargs[, progress=...])``."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the function (plain, picklable values)."""
    summarize: Callable[[Any], ActionOutcome] = _plain
    """The function's result -> what the viewer shows (runs in the app: keep it light)."""
    question: Question | None = None
    """Asked before it runs (its answer is one more keyword argument); None: it just runs."""


def call_action(target: str, ckpt_dir: str, kwargs: dict[str, Any], progress: Callable[[Any], None]) -> Any:
    """In the child: import ``target`` and call it on ``ckpt_dir`` (with ``progress`` when it takes one)."""
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    try:
        takes_progress = "progress" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        takes_progress = False
    if takes_progress:
        return function(ckpt_dir, **kwargs, progress=progress)
    return function(ckpt_dir, **kwargs)


def progress_text(value: Any) -> str:
    """A progress value as one short line: ``(done, total, what)`` -> ``2/5 model.safetensors``,
    ``(done, total)`` -> ``2/5``, a fraction -> ``40%``, anything else as it prints, on one line,
    its last 100 characters."""
    if isinstance(value, tuple) and len(value) in (2, 3) and all(isinstance(v, int) for v in value[:2]):
        done, total, *what = value
        return " ".join([f"{done}/{total}", *map(str, what)])
    if isinstance(value, float) and 0 <= value <= 1:
        return f"{value:.0%}"
    text = " ".join(str(value).split())  # one line: text generated so far, say
    return text if len(text) <= 100 else "…" + text[-99:]


def _verified(problems: list[str]) -> ActionOutcome:
    if not problems:
        return ActionOutcome(True, "every file matches its manifest")
    return ActionOutcome(False, f"{len(problems)} problem{'s' if len(problems) != 1 else ''}", tuple(problems))


def _evaluated(record: Any) -> ActionOutcome:
    """A ``StoredEval`` (engine.eval_store) -> its numbers."""
    from engine import units

    ppl = units.DASH if record.perplexity is None else f"{record.perplexity:.2f}"
    return ActionOutcome(
        True,
        f"eval loss {units.loss(record.loss)}  ppl {ppl} on {record.data.describe()}",
        (
            f"{record.tokens:,} tokens in {record.data.windows} windows of {record.data.seq_len}",
            f"stored as {record.id}",
        ),
    )


def _exported(result: Any) -> ActionOutcome:
    """An ``ExportResult`` (engine.export) -> where it went."""
    from engine import units

    return ActionOutcome(
        True,
        f"exported to {Path(result.path).resolve()} ({result.dtype}, {units.nbytes(result.size_bytes)})",
        tuple(sorted(result.files)),
    )


def _sampled(result: dict) -> ActionOutcome:
    """``engine.generation.sample_checkpoint``'s dict -> the text and its counts."""
    lines = tuple(result["text"].splitlines()) or ("(nothing: the model ended at once)",)
    return ActionOutcome(
        True,
        f"{result['completion_tokens']} tokens in {result['seconds']:.1f}s ({result['finish_reason']})",
        lines,
    )


def _export_dir(run_dir: Path, step: int) -> str:
    return f"exports/{run_dir.name}-step{step}"


VERIFY = CheckpointAction("verify", "Verify", "engine.checkpoint_index:verify_checkpoint", summarize=_verified)
EVALUATE = CheckpointAction(
    "evaluate",
    "Evaluate",
    "engine.checkpoint_eval:evaluate_checkpoint",
    summarize=_evaluated,
    question=Question(
        "Evaluate on (a .txt/.jsonl file or a shard directory)",
        "data",
        note="blank: the run's held-out split, the windows its own evaluations score",
    ),
)
EXPORT = CheckpointAction(
    "export",
    "Export",
    "engine.export:export_checkpoint",
    kwargs={"dtype": "bfloat16"},
    summarize=_exported,
    question=Question(
        "Export the model and tokenizer (bf16) into",
        "out_dir",
        note="a new directory, loadable with AutoModelForCausalLM / AutoTokenizer, with a model card",
        default=_export_dir,
        required=True,
    ),
)

SAMPLE = CheckpointAction(
    "sample",
    "Sample",
    "engine.generation:sample_checkpoint",
    kwargs={"chat": None, "max_new_tokens": 64, "temperature": 0.7, "seed": 0},
    summarize=_sampled,
    question=Question(
        "Sample from the prompt",
        "prompt",
        note="64 tokens at temperature 0.7 (seed 0); a chat model's template is applied. "
        "`cockpit ckpt sample` has every setting",
        required=True,
    ),
)


def _uploaded(result: dict) -> ActionOutcome:
    """``engine.upload_now.upload_checkpoint``'s dict -> which targets hold a verified copy."""
    failed = result["failed"]
    if failed:
        return ActionOutcome(
            False,
            f"{len(failed)} of {len(failed) + len(result['verified'])} copies failed",
            tuple(f"{target}: {error}" for target, error in failed.items()),
        )
    return ActionOutcome(True, f"verified at {', '.join(result['verified'])}")


UPLOAD = CheckpointAction("upload", "Upload", "engine.upload_now:upload_checkpoint", summarize=_uploaded)

#: The actions the viewer's ``checkpoint_action`` binding can name.
ACTIONS: dict[str, CheckpointAction] = {a.name: a for a in (VERIFY, EVALUATE, EXPORT, SAMPLE, UPLOAD)}


def run_action(action: CheckpointAction, ckpt_dir: Path, on_progress: Callable[[Any], None], cancel) -> ActionOutcome:
    """Run ``action`` on ``ckpt_dir`` in a child process (blocking: call it from a worker thread).
    Whatever goes wrong (the function raises, the child dies) is a failed outcome, never an exception;
    only a cancel (``cockpit.offload.Cancelled``) is raised."""
    from cockpit.offload import Cancelled, run_in_child

    try:
        result = run_in_child(call_action, (action.target, str(ckpt_dir), dict(action.kwargs)), on_progress, cancel)
    except Cancelled:
        raise
    except Exception as exc:
        return ActionOutcome(False, f"{type(exc).__name__}: {exc}".splitlines()[0][:200], (str(exc),))
    try:
        return action.summarize(result)
    except Exception as exc:
        return ActionOutcome(False, f"unexpected result ({type(exc).__name__}: {exc})")
