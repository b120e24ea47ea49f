"""The work the checkpoint viewer runs on one checkpoint (verify; evaluate, sample, export to come),
each in a child process (``cockpit.offload.run_in_child``), so neither torch nor a long hash ever
runs in the app's process.

An action names its function as ``"module:function"``: the module is imported in the child only, so
the app never imports the torch stack for it. The function is called with the checkpoint directory
(and the action's keyword arguments); one that takes a ``progress`` argument gets a callable whose
values come back as progress. Its result goes through the action's ``summarize`` to an
:class:`ActionOutcome` (ok or not, one line, details). Adding an action to the viewer is an entry in
:data:`ACTIONS` and a binding ``Binding("e", "checkpoint_action('evaluate')", "Evaluate")``.
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
    ``(done, total)`` -> ``2/5``, a fraction -> ``40%``, anything else as it prints."""
    if isinstance(value, tuple) and len(value) in (2, 3) and all(isinstance(v, int) for v in value[:2]):
        done, total, *what = value
        return " ".join([f"{done}/{total}", *map(str, what)])
    if isinstance(value, float) and 0 <= value <= 1:
        return f"{value:.0%}"
    return str(value)


def _verified(problems: list[str]) -> ActionOutcome:
    if not problems:
        return ActionOutcome(True, "every file matches its manifest")
    return ActionOutcome(False, f"{len(problems)} problem{'s' if len(problems) != 1 else ''}", tuple(problems))


VERIFY = CheckpointAction("verify", "Verify", "engine.checkpoint_index:verify_checkpoint", summarize=_verified)

#: The actions the viewer's ``checkpoint_action`` binding can name.
ACTIONS: dict[str, CheckpointAction] = {a.name: a for a in (VERIFY,)}


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
