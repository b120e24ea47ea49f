"""Memory estimate vs dry run: ``cockpit.checks.memory.estimate_memory`` against the peak that
``python -m engine.dryrun`` measures, on this machine's device (the CPU here: resident-set peak above
the resident set before the model was built; CUDA: max_memory_allocated).

Each case is one dry run in its own process (a fresh allocator and a fresh high-water mark) on the
demo corpus and a tokenizer trained on it (made once in a temporary directory), fp32, the demo
config's settings unless the case changes them. The estimate is computed torch-free from the
preset, the tokenizer's vocabulary and the case's settings; ``training`` is compared.

    .venv/bin/python bench/memory_estimate.py [--extended] [--steps 3]

Prints a table and writes bench/results/memory_estimate.json. Target: within +-25% for tiny and nano.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (preset, micro batch, seq len, extra --set items): the demo's 16 x 128, smaller and larger batches,
#: longer sequences, gradient checkpointing.
CASES: list[tuple[str, int, int, tuple[str, ...]]] = [
    ("tiny", 16, 128, ()),
    ("tiny", 4, 128, ()),
    ("tiny", 32, 128, ()),
    ("tiny", 8, 512, ()),
    ("tiny", 16, 128, ("train.gradient_checkpointing=true",)),
    ("nano", 16, 128, ()),
    ("nano", 4, 128, ()),
    ("nano", 8, 512, ()),
    ("nano", 16, 128, ("train.gradient_checkpointing=true",)),
]
#: Other families, shrunk to run in seconds on a CPU (--extended).
EXTENDED: list[tuple[str, int, int, tuple[str, ...]]] = [
    (
        "mac_nano",
        8,
        128,
        (
            "model.num_hidden_layers=2",
            "model.hidden_size=256",
            "model.num_attention_heads=4",
            "model.intermediate_size=512",
        ),
    ),
    (
        "mac_nano",
        8,
        128,
        (
            "model.num_hidden_layers=2",
            "model.hidden_size=256",
            "model.num_attention_heads=4",
            "model.intermediate_size=512",
            "train.gradient_checkpointing=true",
        ),
    ),
    (
        "neox_1_2b",
        8,
        128,
        (
            "model.num_hidden_layers=2",
            "model.hidden_size=256",
            "model.num_attention_heads=4",
            "model.intermediate_size=1024",
        ),
    ),
    ("dense_75m", 4, 128, ("model.num_hidden_layers=4",)),
]


def make_data(root: Path) -> tuple[Path, Path]:
    """The demo corpus (20,000 lines, seed 1234) and a tokenizer of 1,024 trained on it."""
    from engine.data.demo import generate_demo_corpus
    from engine.data.tokenizer import train_tokenizer

    corpus = generate_demo_corpus(root / "corpus.txt", 20000, 1234)
    train_tokenizer(corpus, root / "tokenizer", 1024)
    return corpus, root / "tokenizer"


def case_config(corpus: Path, tokenizer: Path, preset: str, mb: int, seq: int, extra: tuple[str, ...]):
    """The demo config with the case's settings, resolved."""
    from engine.config import apply_overrides, load_config

    base = load_config(ROOT / "configs" / "demo.yaml").model_dump(mode="json")
    items = [
        f"preset={preset}",
        f"train.micro_batch_size={mb}",
        f"train.seq_len={seq}",
        f"data.path={corpus}",
        f"tokenizer.path={tokenizer}",
        *extra,
    ]
    if seq > 512:
        items.append(f"model.max_position_embeddings={seq}")
    from engine.config import RunConfig

    return RunConfig.model_validate(apply_overrides(base, items)), items


def run_case(cfg_yaml: Path, steps: int, out: Path) -> dict:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "engine.dryrun", "--config", str(cfg_yaml), "--steps", str(steps), "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if not out.is_file():
        raise RuntimeError(f"dry run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extended", action="store_true", help="also a Mixtral, a GPT-NeoX and a larger Llama")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per dry run (after 1 warm-up)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "memory_estimate.json")
    args = parser.parse_args()

    from cockpit.checks.memory import estimate_memory
    from cockpit.checks.model_facts import model_facts

    rows = []
    with tempfile.TemporaryDirectory(prefix="cockpit-membench-") as tmp:
        tmp = Path(tmp)
        corpus, tokenizer = make_data(tmp / "data")
        from tokenizers import Tokenizer

        vocab = Tokenizer.from_file(str(tokenizer / "tokenizer.json")).get_vocab_size()
        for i, (preset, mb, seq, extra) in enumerate(CASES + (EXTENDED if args.extended else [])):
            cfg, items = case_config(corpus, tokenizer, preset, mb, seq, extra)
            path = tmp / f"case{i}.yaml"
            path.write_text(cfg.to_yaml(), encoding="utf-8")
            measured = run_case(path, args.steps, tmp / f"case{i}.json")
            if not measured.get("ok"):
                print(
                    f"{preset} {mb}x{seq} {' '.join(extra)}: dry run failed: {measured.get('error')}", file=sys.stderr
                )
                continue
            device = "cuda" if measured["peak"]["kind"] == "cuda" else "cpu"
            facts = model_facts(cfg, vocab)
            assert facts["total_params"] == measured["params"], (facts["total_params"], measured["params"])
            est = estimate_memory(facts, cfg, 1, device=device)
            peak = measured["peak"]["training_bytes"]
            row = {
                "preset": preset,
                "micro_batch_size": mb,
                "seq_len": seq,
                "settings": [s for s in extra if not s.startswith("model.max_position")],
                "params": facts["total_params"],
                "precision": cfg.train.precision,
                "device": measured["device"],
                "estimate_bytes": est["training"],
                "measured_bytes": peak,
                "diff": (est["training"] - peak) / peak,
                "estimate": est,
                "dry_run": measured,
            }
            rows.append(row)
            print(
                f"{preset:10s} {mb:3d} x {seq:4d} {','.join(row['settings'])[:40]:40s} "
                f"est {est['training'] / 2**20:8.1f} MiB  measured {peak / 2**20:8.1f} MiB  {100 * row['diff']:+5.1f}%",
                flush=True,
            )

    print()
    print("| preset | micro batch | seq | settings | estimate MiB | measured MiB | difference |")
    print("|--------|------------:|----:|----------|-------------:|-------------:|-----------:|")
    for r in rows:
        settings = ", ".join(s.replace("train.", "").replace("model.", "") for s in r["settings"]) or "-"
        print(
            f"| {r['preset']} | {r['micro_batch_size']} | {r['seq_len']} | {settings} | "
            f"{r['estimate_bytes'] / 2**20:.1f} | {r['measured_bytes'] / 2**20:.1f} | {100 * r['diff']:+.1f}% |"
        )
    worst = max((abs(r["diff"]) for r in rows), default=0.0)
    print(f"\nworst difference: {100 * worst:.1f}%")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "steps": args.steps,
                "rows": rows,
                "worst_abs_diff": worst,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
