"""Gates: is a checkpoint better than a baseline by a margin? Torch-free.

    decision = decide("eval_loss", candidate=3.10, baseline=3.40, min_improvement=0.05)
    decision.go, decision.line()     # True, "GO: eval_loss 3.1000 vs baseline 3.4000: 8.8% better (needs >= 5.0%)"

Both metrics, ``eval_loss`` and ``perplexity`` (``exp(eval_loss)``), are lower-is-better. The
improvement is relative: ``(baseline - candidate) / baseline``; the gate says GO when it is at least
``min_improvement``. ``min_improvement`` is written ``"5%"`` or ``0.05`` (the same); a negative one
(``"-2%"``) lets a candidate through that is at most that much worse. A baseline is a checkpoint
(evaluated on the same data) or a METRICS.json file (:func:`read_metrics_file`).

``cockpit ckpt gate`` decides once; :class:`RunGate` is the in-run gate of the ``gate`` config
section: at its steps the engine evaluates on the held-out split and stops the run (checkpoint
first) when it is not improving by the margin on the baseline, or, with no baseline, on the run's
own first evaluation.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import GateConfig

#: The metrics a gate compares (both lower-is-better).
METRICS = ("eval_loss", "perplexity")


def parse_improvement(value: str | float | int) -> float:
    """``"5%"`` -> 0.05, ``0.05`` or ``"0.05"`` -> 0.05; ValueError saying what is allowed."""
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = float(text.removesuffix("%").strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an improvement: write a share (0.05) or a percentage (5%)") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not an improvement: a finite share (0.05) or percentage (5%)")
    share = number / 100 if percent else number
    if not percent and abs(share) >= 1:
        raise ValueError(f"{value!r} would be {share:.0%}; write {number:g}% for a percentage, or a share below 1")
    if share <= -1 or share >= 1:
        raise ValueError(f"{value!r}: the improvement must lie between -100% and 100%")
    return share


def metric_value(metric: str, loss: float) -> float:
    """The value of ``metric`` for a mean per-token ``loss``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of: {', '.join(METRICS)}")
    return math.exp(min(loss, 700.0)) if metric == "perplexity" else loss


def _fmt(metric: str, value: float) -> str:
    return f"{value:.2f}" if metric == "perplexity" else f"{value:.4f}"


@dataclass(frozen=True)
class GateDecision:
    """One gate's verdict, with the numbers that made it."""

    metric: str
    """``eval_loss`` or ``perplexity``."""
    candidate: float
    """The candidate's value of the metric."""
    baseline: float
    """The baseline's value of the metric."""
    min_improvement: float
    """The relative improvement asked for (0.05: 5% lower than the baseline)."""
    improvement: float
    """The relative improvement found: ``(baseline - candidate) / baseline`` (negative: worse)."""
    go: bool
    """Whether ``improvement >= min_improvement`` (and both values are finite)."""
    baseline_name: str = "baseline"
    """What the baseline is, in words (a checkpoint, a METRICS.json file, the run's first eval)."""

    @property
    def verdict(self) -> str:
        return "GO" if self.go else "NO-GO"

    @property
    def margin(self) -> float:
        """How far the improvement is above (positive) or below (negative) the one asked for."""
        return self.improvement - self.min_improvement

    def line(self) -> str:
        """``GO: eval_loss 3.1000 vs baseline 3.4000: 8.8% better (needs >= 5.0%, margin +3.8 pts)``."""
        change = f"{abs(self.improvement):.1%} {'better' if self.improvement >= 0 else 'worse'}"
        if not math.isfinite(self.improvement):
            change = "not comparable (a value is not finite)"
        return (
            f"{self.verdict}: {self.metric} {_fmt(self.metric, self.candidate)} vs {self.baseline_name} "
            f"{_fmt(self.metric, self.baseline)}: {change} (needs >= {self.min_improvement:.1%}, "
            f"margin {self.margin * 100:+.1f} pts)"
        )

    def to_json(self) -> dict:
        return {
            "verdict": self.verdict,
            "go": self.go,
            "metric": self.metric,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "improvement": self.improvement,
            "min_improvement": self.min_improvement,
            "margin": self.margin,
        }


def decide(
    metric: str, candidate: float, baseline: float, min_improvement: float, baseline_name: str = "baseline"
) -> GateDecision:
    """GO when ``candidate`` (a value of ``metric``, lower is better) is at least ``min_improvement``
    (relative) below ``baseline``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of: {', '.join(METRICS)}")
    finite = math.isfinite(candidate) and math.isfinite(baseline) and baseline > 0
    improvement = (baseline - candidate) / baseline if finite else math.nan
    go = finite and improvement >= min_improvement - 1e-12
    return GateDecision(metric, candidate, baseline, min_improvement, improvement, go, baseline_name)


def read_metrics_file(path: str | os.PathLike) -> dict[str, float]:
    """The metrics of a METRICS.json baseline: a JSON object with ``eval_loss`` (or ``loss``) and/or
    ``perplexity`` numbers, e.g. what ``cockpit ckpt eval --json`` prints or a stored eval file; the
    one missing is derived (``perplexity = exp(eval_loss)``). ValueError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: metrics file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with eval_loss and/or perplexity")
    found: dict[str, float] = {}
    for key, names in (("eval_loss", ("eval_loss", "loss")), ("perplexity", ("perplexity",))):
        for name in names:
            value = data.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{path}: {name!r} is {value!r}, not a finite number")
            found[key] = float(value)
            break
    if not found:
        raise ValueError(f"{path}: no 'eval_loss' (or 'loss') nor 'perplexity' number in it")
    if "eval_loss" not in found:
        if found["perplexity"] <= 0:
            raise ValueError(f"{path}: 'perplexity' must be positive")
        found["eval_loss"] = math.log(found["perplexity"])
    found.setdefault("perplexity", metric_value("perplexity", found["eval_loss"]))
    return found


class RunGate:
    """The in-run gate (config section ``gate``): which steps it judges, and its reference.

    The reference is the baseline's loss when one is set (:meth:`set_baseline`), else the run's own
    first evaluation (:meth:`observe`). The trainer evaluates at each :meth:`due` step and asks
    :meth:`check`; a NO-GO stops the run."""

    def __init__(self, cfg: GateConfig):
        self.cfg = cfg
        self.reference: tuple[float, str] | None = None  # (loss, what it is in words)
        self.reference_step: int | None = None  # the step of the run's eval that is the reference

    def due(self, step: int) -> bool:
        return step in self.cfg.at_steps or bool(self.cfg.every and step % self.cfg.every == 0)

    def set_baseline(self, loss: float, name: str) -> None:
        self.reference, self.reference_step = (loss, name), None

    def observe(self, step: int, loss: float) -> None:
        """An evaluation of the run: the first finite one is the reference when there is no baseline."""
        if self.reference is None and math.isfinite(loss):
            self.reference, self.reference_step = (loss, f"the run's first eval (step {step})"), step

    def check(self, step: int, loss: float) -> GateDecision | None:
        """The verdict on the evaluation ``loss`` of ``step``; None when it is the reference itself."""
        if self.reference is None or step == self.reference_step:
            return None
        ref_loss, name = self.reference
        metric = self.cfg.metric
        return decide(
            metric, metric_value(metric, loss), metric_value(metric, ref_loss), self.cfg.min_improvement, name
        )

    def state_dict(self) -> dict:
        """What a checkpoint keeps, so a resumed run is judged against the same reference."""
        if self.reference is None:
            return {"reference": None}
        return {"reference": [self.reference[0], self.reference[1], self.reference_step]}

    def load_state_dict(self, state: dict | None) -> None:
        ref = (state or {}).get("reference")
        if ref and self.reference is None:
            self.reference = (float(ref[0]), str(ref[1]))
            self.reference_step = None if len(ref) < 3 or ref[2] is None else int(ref[2])
