"""Checkpoint stall: how much longer the loop iteration that writes a checkpoint takes than one that
does not, in one run of the real engine (target: at most 2x a normal step on the demo).

One engine run (``python -m engine``, as ``cockpit run`` starts it) of the config (default: the
demo) with ``train.log_every=1`` and ``train.save_every=N``, so that every step is a ``metrics``
event and several checkpoints are written. All figures are the engine's own:

- an iteration's wall time is the difference of ``elapsed_s`` between consecutive ``metrics``
  events (everything the loop did in between: the step, events, controls, and any checkpoint);
- the *save* iterations are those in which an interval checkpoint began (the step after
  ``save_every``'s multiples), *during write* those that ran while a checkpoint was still being
  written in the background (before its ``checkpoint saved`` event), *eval* those after an
  evaluation (a config with ``train.eval_every``), *normal* all the others;
- each ``checkpoint saved`` event carries ``duration_s``, the seconds from gathering the state to
  the checkpoint complete on disk (and ``blocked_s``, the part the loop waited for, where an engine
  writes in the background); *time lost per checkpoint* is what the save and during-write
  iterations took beyond the normal median, per checkpoint.

The first iterations (start-up, the allocator warming) are left out (``--skip``). The headline
ratio pairs each save iteration with the median of the normal iterations within 5 of it and takes
the median over the saves: on a shared machine whose load drifts during the run, the whole run's
medians compare a handful of save iterations with others taken at another load (both are printed).
Prints a table and writes JSON to bench/results/checkpoint_stall.json.

    .venv/bin/python bench/checkpoint_stall.py [--config demo] [--steps 300] [--save-every 25] [--set k=v ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit.client import read_events  # noqa: E402
from cockpit.launch import new_run_dir, prepare_config  # noqa: E402
from engine.config import ConfigError  # noqa: E402
from engine.rundir import RunPaths  # noqa: E402

TARGET = 2.0


def run_engine(workdir: Path, config: str, steps: int, save_every: int, extra: list[str]) -> list[dict]:
    """One engine run in ``workdir``; its events."""
    overrides = [f"train.max_steps={steps}", f"train.save_every={save_every}", "train.log_every=1", *extra]
    _, probe = prepare_config(config, overrides)
    if probe.data.source == "demo":  # the demo corpus and tokenizer are made in the scratch directory
        overrides += [
            f"data.path={workdir / 'data' / 'corpus.txt'}",
            f"tokenizer.path={workdir / 'data' / 'tokenizer'}",
        ]
    config_path, cfg = prepare_config(config, overrides)
    run_dir = new_run_dir(cfg, config_path, workdir / "run")
    code = subprocess.call(
        [sys.executable, "-m", "engine", "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if code != 0:
        raise SystemExit(f"the run failed (exit {code}); see {RunPaths(run_dir).engine_log}")
    return list(read_events(RunPaths(run_dir).events))


def classify(events: list[dict], skip: int) -> tuple[dict[int, tuple[float, str]], list[dict]]:
    """Each iteration's wall time and kind (normal, save, during write, eval), by the step it ended
    with, and the interval saves' events."""
    saves = [e for e in events if e["type"] == "checkpoint" and e["action"] == "saved" and e["reason"] == "interval"]
    save_steps = {e["step"] for e in saves}
    eval_steps = {e["step"] for e in events if e["type"] == "eval"}  # a config with train.eval_every
    iterations: dict[int, tuple[float, str]] = {}
    writing: set[int] = set()  # checkpoint steps begun and not yet saved, as the events go by
    last: dict | None = None
    for e in events:
        if e["type"] == "checkpoint" and e["action"] in ("saved", "failed"):
            writing.discard(e["step"])
        if e["type"] != "metrics":
            continue
        if last is not None and e["step"] == last["step"] + 1 and e["step"] > skip:
            if last["step"] in save_steps:
                kind = "save"
            elif last["step"] in eval_steps:
                kind = "eval"
            else:
                kind = "during write" if writing else "normal"
            iterations[e["step"]] = (e["elapsed_s"] - last["elapsed_s"], kind)
        if e["step"] in save_steps:
            writing.add(e["step"])  # begun after this step's metrics
        last = e
    return iterations, saves


def paired_ratios(kinds_of: dict[int, tuple[float, str]], window: int = 5) -> list[float]:
    """Each save iteration against the median of the normal ones within ``window`` iterations of
    it: the same ratio, less exposed to a machine whose load drifts during the run."""
    walls = {k: w for k, (w, _) in kinds_of.items()}
    ratios = []
    for k, (w, kind) in sorted(kinds_of.items()):
        near = [walls[j] for j in range(k - window, k + window + 1) if j in kinds_of and kinds_of[j][1] == "normal"]
        if kind == "save" and near:
            ratios.append(w / statistics.median(near))
    return ratios


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) >= 2 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="demo", help="a config name or path (default: demo)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--save-every", type=int, default=25)
    ap.add_argument("--skip", type=int, default=10, help="iterations left out at the start")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "checkpoint_stall.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        try:
            events = run_engine(Path(tmp), args.config, args.steps, args.save_every, args.overrides)
        except ConfigError as exc:
            print(f"checkpoint_stall: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    iterations, saves = classify(events, args.skip)
    kinds: dict[str, list[float]] = {"normal": [], "save": [], "during write": [], "eval": []}
    for wall, kind in iterations.values():
        kinds[kind].append(wall)
    paired = paired_ratios(iterations)
    if not kinds["normal"] or not kinds["save"] or not paired:
        raise SystemExit(f"too few iterations to compare: { ({k: len(v) for k, v in kinds.items()}) }")
    normal = statistics.median(kinds["normal"])
    ratio = statistics.median(kinds["save"]) / normal
    durations = [e.get("duration_s") for e in saves if e.get("duration_s") is not None]
    blocked = [e.get("blocked_s") for e in saves if e.get("blocked_s") is not None]
    # Time lost to checkpoints per save: what the save and during-write iterations took beyond normal ones.
    extra = sum(w - normal for k in ("save", "during write") for w in kinds[k]) / len(saves)

    print(f"{'iterations':<14}{'n':>5}{'median s':>11}{'p90 s':>9}{'max s':>9}")
    for kind, values in kinds.items():
        if values:
            print(f"{kind:<14}{len(values):>5}{statistics.median(values):>11.4f}{p90(values):>9.4f}{max(values):>9.4f}")
    if durations:
        print(f"checkpoint duration_s: median {statistics.median(durations):.4f}, max {max(durations):.4f}")
    if blocked:
        print(f"checkpoint blocked_s: median {statistics.median(blocked):.4f}, max {max(blocked):.4f}")
    print(f"time lost per checkpoint: {extra:.4f} s")
    print(f"ratio save/normal, medians of the whole run: {ratio:.3f}")
    print(
        f"ratio save/normal, each save against its neighbours (+-5 iterations): {', '.join(f'{r:.2f}' for r in paired)}"
    )
    print(f"ratio (median of those): {statistics.median(paired):.3f}  (target <= {TARGET})")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "bench": "checkpoint_stall",
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "machine": platform.node(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "config": args.config,
                "steps": args.steps,
                "save_every": args.save_every,
                "overrides": args.overrides,
                "iteration_s": kinds,
                "checkpoint_duration_s": durations,
                "checkpoint_bytes": [e.get("size_bytes") for e in saves],
                "checkpoint_blocked_s": blocked,
                "lost_per_checkpoint_s": extra,
                "ratio_save_normal_medians": ratio,
                "paired_ratios": paired,
                "ratio": statistics.median(paired),
                "target": TARGET,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
