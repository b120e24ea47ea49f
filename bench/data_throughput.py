"""Data preparation throughput: `cockpit data prepare` against plain `tokenizers` `encode_batch` on
the same corpus, measured in one run, plus MinHash deduplication alone.

The corpus is synthetic prose (Zipf-distributed words of a 30,000-word vocabulary, sentences and
punctuation, 200-2,000 words a document) with 4% exact and 4% near duplicates planted; the
tokenizer is a byte-level BPE of 16,384 trained on its first 4 MiB. Contenders, alternating over
the repeats, each in a fresh child process so none inherits another's warm state:

- ``encode``:  the minimal script: read the lines, ``encode_batch`` them in batches of the same
               size prepare uses, ids and end-of-text into a numpy uint16 stream, written to a file;
               ``encode_s`` is the time inside ``encode_batch`` alone;
- ``prepare``: ``engine.data.prepare.prepare`` with its defaults (exact + MinHash LSH dedup at 0.8,
               quality filters, validation split 0.005, 100M-token shards);
- ``dedup``:   ``batch_signals`` + ``Deduplicator`` over the same documents, no tokenization.

    .venv/bin/python bench/data_throughput.py [--mib 32] [--repeats 3]

Prints a table and writes bench/results/data_throughput.json. Target: prepare >= 0.7 x encode (MB/s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_corpus(path: Path, mib: int, seed: int = 0) -> dict:
    """Synthetic prose with planted duplicates; returns its counts."""
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "nu", "po", "re", "si", "tu", "va", "ze", "bra", "sto", "qui", "an", "el", "or"]
    vocab = sorted({"".join(rng.choice(syll) for _ in range(rng.randrange(1, 4))) for _ in range(60_000)})[:30_000]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    docs, size, exact, near = [], 0, 0, 0
    while size < mib << 20:
        r = rng.random()
        if docs and r < 0.04:
            doc = rng.choice(docs)
            exact += 1
        elif docs and r < 0.08:
            ws = rng.choice(docs).split(" ")
            for _ in range(max(1, len(ws) // 100)):
                ws[rng.randrange(len(ws))] = rng.choice(vocab)
            doc = " ".join(ws)
            near += 1
        else:
            n = rng.randrange(200, 2000)
            ws = rng.choices(vocab, weights, k=n)
            for i in range(0, n, rng.randrange(8, 20)):
                ws[i] = ws[i].capitalize()
                if i:
                    ws[i - 1] += rng.choice((".", ".", ",", ";", "?"))
            doc = " ".join(ws) + "."
        docs.append(doc)
        size += len(doc) + 1
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return {"documents": len(docs), "bytes": path.stat().st_size, "planted_exact": exact, "planted_near": near}


# --- contenders (child processes) -----------------------------------------------------------


def run_encode(corpus: Path, tok_dir: Path, out: Path) -> dict:
    import numpy as np
    from tokenizers import Tokenizer

    from engine.data.prepare import BATCH_BYTES

    t0 = time.perf_counter()
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    encode_s = 0.0
    n_tokens = 0
    with open(corpus, encoding="utf-8") as f, open(out, "wb") as w:
        batch, size = [], 0
        for line in f:
            line = line.rstrip("\n")
            if line:
                batch.append(line)
                size += len(line)
            if size >= BATCH_BYTES:
                t = time.perf_counter()
                encs = tok.encode_batch(batch, add_special_tokens=False)
                encode_s += time.perf_counter() - t
                ids = []
                for e in encs:
                    ids.extend(e.ids)
                    ids.append(eos)
                w.write(np.asarray(ids, dtype=np.uint16).tobytes())
                n_tokens += len(ids)
                batch, size = [], 0
        if batch:
            t = time.perf_counter()
            encs = tok.encode_batch(batch, add_special_tokens=False)
            encode_s += time.perf_counter() - t
            ids = [i for e in encs for i in (*e.ids, eos)]
            w.write(np.asarray(ids, dtype=np.uint16).tobytes())
            n_tokens += len(ids)
    return {"seconds": time.perf_counter() - t0, "encode_s": encode_s, "tokens": n_tokens}


def run_prepare(corpus: Path, tok_dir: Path, out: Path) -> dict:
    from engine.data.prepare import PrepareSettings, prepare

    t0 = time.perf_counter()
    manifest = prepare([corpus], tok_dir, out, PrepareSettings(seq_len=1024))
    return {
        "seconds": time.perf_counter() - t0,
        "tokens": manifest["total_tokens"] + manifest["val_tokens"],
        "documents": manifest["documents"],
    }


def run_dedup(corpus: Path, tok_dir: Path, out: Path) -> dict:
    from engine.data.dedup import Deduplicator
    from engine.data.prepare import BATCH_BYTES
    from engine.data.signals import batch_signals

    t0 = time.perf_counter()
    dedup = Deduplicator(0.8, 128)
    docs = 0
    with open(corpus, encoding="utf-8") as f:
        batch, size = [], 0

        def flush():
            sig = batch_signals(batch, 128)
            bands = dedup.band_keys(sig.signatures)
            for i, key in enumerate(sig.exact_keys.tolist()):
                if dedup.add_exact(key):
                    dedup.add_near(sig.signatures[i], bands[i])

        for line in f:
            line = line.rstrip("\n")
            if line:
                batch.append(line)
                size += len(line)
                docs += 1
            if size >= BATCH_BYTES:
                flush()
                batch, size = [], 0
        if batch:
            flush()
    return {"seconds": time.perf_counter() - t0, "documents": docs, "counts": dict(dedup.counts)}


CONTENDERS = {"encode": run_encode, "prepare": run_prepare, "dedup": run_dedup}


def child(argv: list[str]) -> int:
    name, corpus, tok_dir, out, result = argv
    res = CONTENDERS[name](Path(corpus), Path(tok_dir), Path(out))
    Path(result).write_text(json.dumps(res), encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=32, help="corpus size in MiB")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "data_throughput.json")
    args = parser.parse_args()
    from engine.data.tokenizer import train_tokenizer

    rows: dict[str, list[dict]] = {k: [] for k in CONTENDERS}
    with tempfile.TemporaryDirectory(prefix="cockpit-databench-") as tmp:
        tmp = Path(tmp)
        info = make_corpus(tmp / "corpus.txt", args.mib)
        with open(tmp / "corpus.txt", encoding="utf-8") as f:
            head = f.read(4 << 20)
        (tmp / "head.txt").write_text(head, encoding="utf-8")
        train_tokenizer(tmp / "head.txt", tmp / "tok", 16_384)
        print(
            f"corpus: {info['documents']:,} documents, {info['bytes'] / 2**20:.1f} MiB "
            f"({info['planted_exact']:,} exact and {info['planted_near']:,} near duplicates planted)",
            flush=True,
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for r in range(args.repeats):
            order = list(CONTENDERS) if r % 2 == 0 else list(reversed(CONTENDERS))
            for name in order:
                out = tmp / f"out-{name}-{r}"
                result = tmp / f"{name}-{r}.json"
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        name,
                        str(tmp / "corpus.txt"),
                        str(tmp / "tok"),
                        str(out),
                        str(result),
                    ],
                    check=True,
                    env=env,
                )
                res = json.loads(result.read_text())
                res["mb_per_s"] = info["bytes"] / res["seconds"] / 1e6
                rows[name].append(res)
                print(
                    f"  run {r + 1}/{args.repeats} {name:8s} {res['seconds']:6.2f} s  {res['mb_per_s']:5.2f} MB/s",
                    flush=True,
                )
                subprocess.run(["rm", "-rf", str(out)], check=False)

    def med(name: str, key: str = "mb_per_s") -> float:
        return statistics.median(x[key] for x in rows[name])

    encode_only = statistics.median(info["bytes"] / x["encode_s"] / 1e6 for x in rows["encode"])
    ratio = med("prepare") / med("encode")
    ratio_pure = med("prepare") / encode_only
    dedup_docs = statistics.median(x["documents"] / x["seconds"] for x in rows["dedup"])
    print()
    print("| contender | median MB/s | runs (s) |")
    print("|-----------|------------:|----------|")
    for name in CONTENDERS:
        runs = ", ".join(f"{x['seconds']:.2f}" for x in rows[name])
        print(f"| {name} | {med(name):.2f} | {runs} |")
    print(f"| encode_batch calls alone | {encode_only:.2f} | |")
    print(f"\nprepare / encode script: {ratio:.3f} (target >= 0.7); prepare / encode_batch alone: {ratio_pure:.3f}")
    print(f"MinHash dedup (signals + LSH, no tokenization): {dedup_docs:,.0f} docs/s, {med('dedup'):.1f} MB/s")
    print(f"prepare dropped: {rows['prepare'][0]['documents']['dropped']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "corpus": info,
                "rows": rows,
                "ratio_prepare_encode": ratio,
                "ratio_prepare_encode_batch_only": ratio_pure,
                "dedup_docs_per_s": dedup_docs,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2:]))
    sys.exit(main())
