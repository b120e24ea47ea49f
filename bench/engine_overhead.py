"""Engine overhead: training steps/s of the engine against a bare PyTorch loop and the Hugging Face
`Trainer`, with the same model, batch, optimizer, schedule and data, measured in one run.

Each contender runs in its own child process of this one (one process tree), one after another,
alternating over the repeats so that machine noise hits all alike:
- engine:  `python -m engine --run-dir DIR` as `cockpit run` starts it: event bus serving, telemetry,
           logging every 10 steps; steps/s from its own metrics between the first and last logged step;
- bare:    forward, backward, clip, AdamW step, scheduler step, zero_grad; no logging, no syncs;
- trainer: `transformers.Trainer` given the same model and optimizer (`optimizers=`), logging every 10 steps.
bare and trainer are timed from the end of step 1 to the end of the last step, like the engine.

    .venv/bin/python bench/engine_overhead.py [--steps 150] [--repeats 2] [--preset tiny]

Prints a table and writes bench/results/engine_overhead.json. Targets on a CPU: engine >= 0.98 x bare
and >= 1.0 x Trainer.
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


# --- contenders (each runs in a child process) ---------------------------------------------------


def _build(run_dir: Path):
    """Model, optimizer, scheduler and batches exactly as the engine builds them for this run."""
    import torch
    from accelerate.utils import set_seed

    from engine.config import read_run_config
    from engine.data.text import BatchIterator, split_tokens, tokenize_file
    from engine.data.tokenizer import load_tokenizer
    from engine.model import build_model, run_model_config
    from engine.optim import build_optimizer, build_scheduler

    cfg = read_run_config(run_dir)
    train = cfg.train
    if train.threads:
        torch.set_num_threads(train.threads)
    set_seed(train.seed)
    tok = load_tokenizer(cfg.tokenizer.path)
    tokens = tokenize_file(cfg.data.path, tok)
    train_tokens, _ = split_tokens(tokens, cfg.data.val_fraction)
    batches = BatchIterator(train_tokens, train.micro_batch_size, train.seq_len, train.seed)
    mcfg = run_model_config(cfg, tok)
    set_seed(train.seed)
    model = build_model(mcfg)
    optimizer = build_optimizer(model, train)
    scheduler = build_scheduler(optimizer, train)
    return cfg, model, optimizer, scheduler, batches


def run_bare(run_dir: Path) -> float:
    import torch

    cfg, model, optimizer, scheduler, batches = _build(run_dir)
    steps, clip = cfg.train.max_steps, cfg.train.grad_clip or float("inf")
    model.train()
    t_first = None
    for step in range(1, steps + 1):
        x = next(batches)
        loss = model(input_ids=x, labels=x, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 1:
            t_first = time.perf_counter()
    return (steps - 1) / (time.perf_counter() - t_first)


def run_trainer(run_dir: Path) -> float:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    cfg, model, optimizer, scheduler, batches = _build(run_dir)
    train = cfg.train
    n = batches.n_windows
    tokens, seq = batches.tokens, train.seq_len

    class Windows(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            x = torch.from_numpy(tokens[i * seq : (i + 1) * seq].astype("int64"))
            return {"input_ids": x, "labels": x}

    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks[state.global_step] = time.perf_counter()

    args = TrainingArguments(
        output_dir=str(run_dir / "trainer"),
        per_device_train_batch_size=train.micro_batch_size,
        gradient_accumulation_steps=train.grad_accum_steps,
        max_steps=train.max_steps,
        max_grad_norm=train.grad_clip,
        logging_steps=train.log_every,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        seed=train.seed,
        disable_tqdm=True,
    )
    Trainer(
        model=model, args=args, train_dataset=Windows(), optimizers=(optimizer, scheduler), callbacks=[Clock()]
    ).train()
    return (train.max_steps - 1) / (marks[train.max_steps] - marks[1])


def run_engine(run_dir: Path) -> float:
    from cockpit.client import read_events
    from engine.rundir import RunPaths

    subprocess.run(
        [sys.executable, "-m", "engine", "--run-dir", str(run_dir)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = [e for e in read_events(RunPaths(run_dir).events) if e["type"] == "metrics"]
    first, last = metrics[0], metrics[-1]
    return (last["step"] - first["step"]) / (last["elapsed_s"] - first["elapsed_s"])


CONTENDERS = {"engine": run_engine, "bare": run_bare, "trainer": run_trainer}


# --- driver ---------------------------------------------------------------------------------------


def make_run(work: Path, name: str, steps: int, preset: str) -> Path:
    from cockpit.launch import new_run_dir, prepare_config

    overrides = [
        f"train.max_steps={steps}",
        "train.save_every=0",
        "train.log_every=10",
        f"preset={preset}",
        f"data.path={work / 'data' / 'corpus.txt'}",
        f"tokenizer.path={work / 'data' / 'tokenizer'}",
    ]
    config_path, cfg = prepare_config("demo", overrides)
    return new_run_dir(cfg, config_path, work / name)


def child(name: str, run_dir: Path) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "engine_overhead.json")
    ap.add_argument("--child", choices=sorted(CONTENDERS))
    ap.add_argument("--run-dir", type=Path)
    args = ap.parse_args()
    if args.child:
        print(CONTENDERS[args.child](args.run_dir))
        return

    results: dict[str, list[float]] = {k: [] for k in CONTENDERS}
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        work = Path(tmp)
        child("engine", make_run(work, "warmup", 30, args.preset))  # corpus and tokenizer, once
        order = list(CONTENDERS)
        for i in range(args.repeats):
            for name in order if i % 2 == 0 else order[::-1]:
                sps = child(name, make_run(work, f"{name}-{i}", args.steps, args.preset))
                results[name].append(sps)
                print(f"  run {i + 1}/{args.repeats} {name:>7}: {sps:.3f} steps/s", flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\n{'contender':<10}{'median steps/s':>16}   runs")
    for name in CONTENDERS:
        print(f"{name:<10}{med[name]:>16.3f}   " + ", ".join(f"{x:.3f}" for x in results[name]))
    vs_bare, vs_trainer = med["engine"] / med["bare"], med["engine"] / med["trainer"]
    print(f"engine / bare:    {vs_bare:.4f}  (target >= 0.98)")
    print(f"engine / Trainer: {vs_trainer:.4f}  (target >= 1.0)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "bench": "engine_overhead",
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "machine": platform.node(),
                "cpus": os.cpu_count(),
                "preset": args.preset,
                "steps": args.steps,
                "repeats": args.repeats,
                "steps_per_s": results,
                "median": med,
                "engine_vs_bare": vs_bare,
                "engine_vs_trainer": vs_trainer,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
