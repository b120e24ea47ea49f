"""Responsiveness of the app: how long each screen takes to open (target < 300 ms), and how late
the event loop runs (frames) while a tokenizer trains or shards are prepared in the background
(target < 50 ms). Prints a table and writes JSON to bench/results/wizard_responsiveness.json.

    .venv/bin/python bench/wizard_responsiveness.py [--repeats 5] [--corpus-mb 20]

A screen's open time is from pushing it to the end of the first refresh after its mount (what a
person waits for before it answers), on the shipped demo draft, in a headless 120x40 terminal; the
home lists 20 finished runs. The frame lateness is measured by a 10 ms ticker on the app's event
loop: how much later than asked each tick ran (a blocked loop delays every frame by as much),
while the tokenizer step trains on a synthetic corpus of ``--corpus-mb`` MB (ctrl+t) and while the
data step prepares shards of it (p).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fixture runs the snapshots use

from tui_helpers import T0, finished_run  # noqa: E402

from cockpit.app import STEP_SCREENS, CockpitApp  # noqa: E402
from cockpit.screens.dashboard import DashboardScreen  # noqa: E402
from cockpit.screens.home import HomeScreen  # noqa: E402
from cockpit.wizard import STEP_KEYS, WizardState  # noqa: E402

SIZE = (120, 40)
OPEN_TARGET_MS = 300
FRAME_TARGET_MS = 50
TICK_S = 0.010
WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "ro", "su", "ta", "vi", "xo", "ze") for b in range(60)]


def write_corpus(path: Path, megabytes: int) -> Path:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < megabytes << 20:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(20, 120))) + ".\n"
            f.write(line)
            written += len(line)
    return path


async def open_time(app: CockpitApp, pilot, make_screen) -> float:
    """Seconds from pushing the screen to the end of its first refresh."""
    t0 = time.perf_counter()
    await app.push_screen(make_screen())
    await pilot.pause()
    elapsed = time.perf_counter() - t0
    await app.pop_screen()
    await pilot.pause()
    return elapsed


async def screen_open_times(repeats: int, runs_dir: Path, run_dir: Path) -> dict[str, list[float]]:
    app = CockpitApp(runs_dir=runs_dir, wizard=WizardState())
    out: dict[str, list[float]] = {}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        cases = {key: (lambda key=key: STEP_SCREENS[key](app.wizard.draft, app.wizard.facts)) for key in STEP_KEYS}
        cases["home (20 runs)"] = lambda: HomeScreen(runs_dir)
        cases["dashboard (finished run)"] = lambda: DashboardScreen(run_dir)
        for name, make in cases.items():
            await open_time(app, pilot, make)  # the first opening imports the screen's modules
            out[name] = [await open_time(app, pilot, make) for _ in range(repeats)]
    return out


async def lateness_while(app: CockpitApp, pilot, start, busy, timeout: float = 300.0) -> tuple[list[float], float]:
    """Tick lateness (seconds) on the app's loop while ``busy()`` holds after ``start()``."""
    late: list[float] = []
    await start()
    t_start = time.perf_counter()
    deadline = t_start + timeout
    while busy() and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        await asyncio.sleep(TICK_S)
        late.append(time.perf_counter() - t0 - TICK_S)
    return late, time.perf_counter() - t_start


async def background_lateness(corpus: Path, work: Path) -> dict[str, dict]:
    from cockpit.tokenizer_info import train_on_files

    results = {}
    os.chdir(work)
    # the tokenizer step trains on the corpus
    state = WizardState().go("tokenizer")
    state = state.with_draft(
        state.draft.update({"data.source": "text", "data.path": str(corpus), "tokenizer.path": "tok-bench"})
    )
    app = CockpitApp(runs_dir=work / "runs", wizard=state)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()

        async def train() -> None:
            await pilot.press("ctrl+t")
            await pilot.pause()

        late, took = await lateness_while(app, pilot, train, lambda: app.wizard.facts.vocab_size is None)
        results["tokenizer training"] = {"late_s": late, "work_s": took}

    # the data step prepares shards of it with a tokenizer made beforehand
    train_on_files([corpus], work / "tok", 2048)
    state = WizardState().go("data")
    state = state.with_draft(state.draft.update({"tokenizer.path": str(work / "tok"), "train.seq_len": 128}))
    app = CockpitApp(runs_dir=work / "runs", wizard=state)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.query_one("#data-path").focus()
        screen.query_one("#data-path").value = str(corpus)
        await pilot.press("enter")
        while screen.stats is None:  # the validation and stats run first
            await asyncio.sleep(0.05)

        async def prepare() -> None:
            await pilot.press("p")
            await pilot.pause()

        late, took = await lateness_while(app, pilot, prepare, lambda: screen.manifest is None)
        results["shard preparation"] = {"late_s": late, "work_s": took}
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--corpus-mb", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "wizard_responsiveness.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.chdir(tmp)
        runs = tmp / "runs"
        for i in range(20):
            run = finished_run(runs / f"run-{i:02d}")
            os.utime(run / "events.jsonl", (T0 + i, T0 + i))
        opens = asyncio.run(screen_open_times(args.repeats, runs, runs / "run-00"))
        corpus = write_corpus(tmp / "corpus.txt", args.corpus_mb)
        (tmp / "work").mkdir()
        background = asyncio.run(background_lateness(corpus, tmp / "work"))

    print(f"{'screen opens':<28}{'median ms':>10}{'max ms':>10}   target < {OPEN_TARGET_MS} ms")
    for name, times in opens.items():
        print(f"{name:<28}{statistics.median(times) * 1e3:>10.1f}{max(times) * 1e3:>10.1f}")
    print(
        f"\n{'loop lateness while':<28}{'ticks':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'work s':>9}"
        f"   target < {FRAME_TARGET_MS} ms"
    )
    for name, r in background.items():
        late = sorted(r["late_s"])
        p99 = late[min(len(late) - 1, int(0.99 * len(late)))]
        print(
            f"{name:<28}{len(late):>7}{statistics.median(late) * 1e3:>9.1f}{p99 * 1e3:>9.1f}"
            f"{late[-1] * 1e3:>9.1f}{r['work_s']:>9.1f}"
        )
    print(f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "size": SIZE,
                "corpus_mb": args.corpus_mb,
                "screen_open_s": opens,
                "background": {
                    name: {
                        "work_s": r["work_s"],
                        "ticks": len(r["late_s"]),
                        "max_late_s": max(r["late_s"]),
                        "median_late_s": statistics.median(r["late_s"]),
                    }
                    for name, r in background.items()
                },
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
