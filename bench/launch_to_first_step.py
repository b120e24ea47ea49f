"""Launch to first step: `cockpit run demo --headless` until it prints `step 1`, phase by phase.

Two cases, measured separately: **steady** (the demo corpus, its tokenizer and its token cache are
already in the data directory: every launch but the first) and **first run** (a fresh data
directory: the corpus is generated, the tokenizer trained, the corpus tokenized and cached). For
scale, **imports**: a fresh process importing what the engine needs to reach its first step
(``engine.train``: torch, accelerate, transformers; plus the transformers tokenizer and Llama code
the demo loads lazily), and nothing else. Target: steady launch to first step <= imports + 1.5 s.

The phases are read from the engine's own clock (the ``ts`` of its events in events.jsonl) and the
headless client's lines:

    cockpit        launch -> the client's ``run ... (engine pid N)`` line, printed once the engine
                   process is started (CLI start-up, config, run directory, spawn)
    engine import  -> status starting (python -m engine: torch, accelerate, transformers, engine)
    data           -> the ``data:`` log line (Accelerator, tokenizer load, corpus/tokenizer/tokens)
    model          -> hello (model config and code, weights, optimizer, Accelerate prepare)
    first step     running -> metrics of step 1
    to the screen  metrics of step 1 -> its line on the headless client's stdout

``--baseline DIR`` launches another commit's source tree too, alternating with this one (ratios
within one run). Each launch runs 2 steps (``--set train.max_steps=2``) of the demo config otherwise as shipped. Prints
a table and writes JSON to bench/results/launch_to_first_step.json.

    .venv/bin/python bench/launch_to_first_step.py [--repeats 5] [--first-repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SETS = ["train.max_steps=2", "train.warmup_steps=1", "train.save_every=0"]
PHASES = ("cockpit", "engine import", "data", "model", "hello->running", "first step", "to the screen")
#: The modules the engine imports before its first step, in a fresh process and nothing else.
IMPORTS = (
    "import engine.train, transformers; transformers.AutoTokenizer; transformers.PreTrainedTokenizerFast; "
    "transformers.AutoModelForCausalLM; transformers.LlamaConfig; transformers.LlamaForCausalLM"
)
RUN_LINE = re.compile(r"^run (?P<dir>.+) \(engine pid (?P<pid>\d+)\)")


def cockpit_exe() -> str:
    return shutil.which("cockpit", path=str(Path(sys.executable).parent)) or "cockpit"


def launch(cwd: Path, source: Path | None = None) -> dict:
    """One `cockpit run demo --headless` in ``cwd``; wall-clock marks and the engine's event times.
    ``source``: run the cockpit and engine of that source tree instead of this one."""
    argv = [cockpit_exe(), "run", "demo", "--headless", *[a for s in SETS for a in ("--set", s)]]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"PYTHONPATH": str(source)} if source else {})}
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    run_dir, engine, spawned, first_line, lines = None, None, None, None, []
    for line in proc.stdout:
        now = time.time()
        lines.append(line.rstrip())
        m = RUN_LINE.match(line)
        if m and run_dir is None:
            run_dir, spawned = Path(m["dir"]), now  # printed right after the engine process is started
            try:
                engine = psutil.Process(int(m["pid"]))
            except psutil.Error:
                engine = None
        if first_line is None and line.startswith("step 1/"):
            first_line = now
    t_end = time.time()
    if proc.wait() != 0 or run_dir is None or first_line is None:
        raise RuntimeError("the launch failed:\n" + "\n".join(lines[-20:]))
    if engine is not None:  # its exit (interpreter teardown) must not overlap the next measurement
        psutil.wait_procs([engine], timeout=60)
    from engine.rundir import RunPaths

    events = [json.loads(x) for x in RunPaths(run_dir).events.read_text().splitlines()]

    def ts(pred) -> float:
        return next(e["ts"] for e in events if pred(e))

    starting = ts(lambda e: e["type"] == "status" and e["state"] == "starting")
    data = ts(lambda e: e["type"] == "log" and e["message"].startswith("data:"))
    hello = ts(lambda e: e["type"] == "hello")
    running = ts(lambda e: e["type"] == "status" and e["state"] == "running")
    step1 = ts(lambda e: e["type"] == "metrics" and e["step"] == 1)
    telemetry = [e["ts"] for e in events if e["type"] == "telemetry"]
    phases = {
        "cockpit": spawned - t0,
        "engine import": starting - spawned,
        "data": data - starting,
        "model": hello - data,
        "hello->running": running - hello,
        "first step": step1 - running,
        "to the screen": first_line - step1,
    }
    return {
        "total": first_line - t0,
        "phases": phases,
        "exit_after_first_step": t_end - first_line,
        "first_telemetry_after_starting": telemetry[0] - starting if telemetry else None,
    }


def import_time(code: str = IMPORTS) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    return time.perf_counter() - t0


def median_phases(trials: list[dict]) -> dict[str, float]:
    return {p: statistics.median(t["phases"][p] for t in trials) for p in PHASES}


def measure(repeats: int, first_repeats: int, tmp: Path, sources: dict[str, Path | None]) -> dict:
    """Steady and first-run launches of each source tree, alternating, and the import times."""
    out = {name: {"steady": [], "first run": []} for name in sources}
    imports, engine_only = [], []
    for name, source in sources.items():
        (tmp / name).mkdir()
        launch(tmp / name, source)  # makes the corpus, tokenizer (and token cache); warms the page cache
    for i in range(max(repeats, first_repeats)):
        if i < repeats:
            imports.append(import_time())
            engine_only.append(import_time("import engine.train"))
        for name, source in sources.items():
            if i < repeats:
                out[name]["steady"].append(launch(tmp / name, source))
            if i < first_repeats:
                fresh = tmp / f"{name}-first-{i}"
                fresh.mkdir()
                out[name]["first run"].append(launch(fresh, source))
    return {
        "trials": out,
        "imports_s": imports,
        "import_engine_train_s": engine_only,
        "components": components(tmp / "this", repeats),
    }


# --- components: each piece of the engine's start-up timed alone, in engine order ----------------

COMPONENTS = (
    "import torch",
    "import transformers",
    "import engine.train",
    "Accelerator",
    "tokenizer load",
    "tokens from the cache",
    "tokenize (no cache)",
    "model config",
    "model build",
    "optimizer + prepare",
    "telemetry: NVML init",
    "telemetry: first sample",
    "TensorBoard writer",
    "first step",
)


def components_child(run_dir: Path) -> None:
    """In a fresh process: time each start-up piece of the engine on the run ``run_dir`` (whose
    data directory holds the demo corpus, tokenizer and token cache); prints JSON."""
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    sys.path.insert(0, str(ROOT))
    out: dict[str, float] = {}
    t = time.perf_counter()

    def mark(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        out[name], t = now - t, now

    import torch

    mark("import torch")
    import transformers  # noqa: F401

    mark("import transformers")
    from accelerate import Accelerator

    from engine.config import read_run_config
    from engine.data.text import tokenize_file
    from engine.data.token_cache import cached_tokens
    from engine.data.tokenizer import load_tokenizer
    from engine.model import build_model, model_config
    from engine.nvml import Nvml
    from engine.optim import build_optimizer
    from engine.telemetry import sample_system

    mark("import engine.train")
    cfg = read_run_config(run_dir)
    acc = Accelerator(cpu=not torch.cuda.is_available())
    mark("Accelerator")
    tok = load_tokenizer(cfg.tokenizer.path)
    mark("tokenizer load")
    cached_tokens(cfg.data.path, cfg.tokenizer.path, tok)
    mark("tokens from the cache")
    tokenize_file(cfg.data.path, tok)
    mark("tokenize (no cache)")
    mcfg = model_config(cfg.preset, cfg.model, len(tok))
    mark("model config")
    model = build_model(mcfg)
    mark("model build")
    model, optimizer = acc.prepare(model, build_optimizer(model, cfg.train))
    mark("optimizer + prepare")
    gpus = Nvml()
    mark("telemetry: NVML init")
    sample_system(gpus=gpus)
    mark("telemetry: first sample")
    from torch.utils.tensorboard import SummaryWriter

    from engine.rundir import RunPaths

    SummaryWriter(log_dir=str(RunPaths(run_dir).tensorboard)).close()
    mark("TensorBoard writer")
    x = torch.randint(0, len(tok), (cfg.train.micro_batch_size, cfg.train.seq_len))
    acc.backward(model(input_ids=x, labels=x, use_cache=False).loss)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    mark("first step")
    print(json.dumps(out))


def components(steady_dir: Path, repeats: int) -> list[dict[str, float]]:
    run_dir = sorted((steady_dir / "runs").iterdir())[-1]
    return [
        json.loads(
            subprocess.run(
                [sys.executable, __file__, "--components-child", str(run_dir)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.splitlines()[-1]
        )
        for _ in range(repeats)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="steady launches (and import measurements)")
    ap.add_argument("--first-repeats", type=int, default=3, help="first-run launches, each in a fresh directory")
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also launch the source tree of another commit (e.g. `git archive REV | tar -x -C DIR`), "
        "alternating with this one, with the same virtual environment",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "launch_to_first_step.json")
    ap.add_argument("--components-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.components_child:
        components_child(args.components_child)
        return
    load_before = os.getloadavg()
    sources = {"this": None, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory(prefix="cockpit-launch-") as tmp:
        result = measure(args.repeats, args.first_repeats, Path(tmp), sources)
    imports = result["imports_s"]
    imp = statistics.median(imports)
    cols = {
        f"{name}: {case}": trials
        for name, cases in result["trials"].items()
        for case, trials in cases.items()
        if trials
    }
    width = max(len(c) for c in cols) + 2
    print(f"{'phase (median s)':<22}" + "".join(f"{c:>{width}}" for c in cols))
    med = {c: median_phases(t) for c, t in cols.items()}
    for p in PHASES:
        print(f"{p:<22}" + "".join(f"{med[c][p]:>{width}.3f}" for c in cols))
    totals = {c: statistics.median(t["total"] for t in trials) for c, trials in cols.items()}
    print(f"{'launch -> step 1 line':<22}" + "".join(f"{totals[c]:>{width}.3f}" for c in cols))
    print(
        f"imports alone (fresh process, median of {len(imports)}): {imp:.3f} s "
        f"[{', '.join(f'{x:.2f}' for x in imports)}]; of which `import engine.train` "
        f"{statistics.median(result['import_engine_train_s']):.3f} s (the rest: transformers' tokenizer and "
        f"Llama code, imported when first used)"
    )
    for col, trials in cols.items():
        runs = ", ".join(f"{t['total']:.2f}" for t in trials)
        print(f"{col}: launch -> step 1 = imports + {totals[col] - imp:.3f} s; runs: {runs}")
    if args.baseline:
        for case in ("steady", "first run")[: 1 + (args.first_repeats > 0)]:
            ratio = totals[f"this: {case}"] / totals[f"baseline: {case}"]
            print(f"{case}: this / baseline = {ratio:.3f}")
    print("target: steady launch -> step 1 <= imports + 1.5 s")
    print(f"\n{'component (fresh process, engine order)':<42}{'median s':>10}")
    for name in COMPONENTS:
        print(f"{name:<42}{statistics.median(c[name] for c in result['components']):>10.3f}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "bench": "launch_to_first_step",
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "machine": platform.node(),
                "cpus": os.cpu_count(),
                "load_before": load_before,
                "load_after": os.getloadavg(),
                "sets": SETS,
                "baseline": str(args.baseline) if args.baseline else None,
                **result,
                "imports_median_s": imp,
                "median_phases": med,
                "median_total": totals,
                "target_over_imports_s": 1.5,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
