"""Config: the file loads and validates, its paths exist, and its numbers agree with each other and
with the model (sequence length within the model's positions, intervals within the run).

Loading is done by ``load_run_config`` (the caller's job, so that a config that does not load still
gets a report); ``check_config`` reports on what was loaded.
"""

from __future__ import annotations

from pathlib import Path

from cockpit.checks.base import CheckContext, CheckResult, result


def load_run_config(
    config: str, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[Path | None, object, CheckResult]:
    """``(path, RunConfig or None, the config.load result)``; never raises for a bad config."""
    from cockpit.launch import prepare_config
    from engine.config import ConfigError

    try:
        path, cfg = prepare_config(config, overrides)
    except ConfigError as exc:
        return (
            None,
            None,
            result(
                "config.load",
                "Config",
                "fail",
                str(exc),
                "fix the key or value named above (every key is documented in engine/config.py)",
            ),
        )
    return path, cfg, result("config.load", "Config", "ok", f"{path}: valid", path=str(path))


def model_positions(cfg) -> tuple[int | None, str]:
    """The model's maximum positions (preset, or ``model.max_position_embeddings``) and where it
    comes from."""
    from presets import PresetError, load_preset

    if "max_position_embeddings" in cfg.model:
        return int(cfg.model["max_position_embeddings"]), "model.max_position_embeddings"
    try:
        preset = load_preset(cfg.preset)
    except PresetError:
        return None, ""
    value = preset.get("max_position_embeddings")
    return (int(value), f"preset {cfg.preset}") if value else (None, "")


def notes(cfg) -> list[str]:
    """What the run will do otherwise than the config says, for ``note:`` lines (``cockpit run``,
    ``cockpit check``). With ``train.epochs`` the engine knows the steps only once it has read
    the data, and says so itself."""
    note = None if cfg.train.epochs else cfg.train.warmup_note()
    return [note] if note else []


def _missing(path: Path) -> str:
    """What is wrong with a path that is not the file or directory wanted."""
    if not path.exists():
        return "does not exist"
    return "is a directory, not a file" if path.is_dir() else "is a file, not a directory"


def check_config(ctx: CheckContext) -> list[CheckResult]:
    cfg = ctx.cfg
    if cfg is None:
        return []
    out = []
    train, data = cfg.train, cfg.data

    from presets import PresetError, load_preset

    try:
        load_preset(cfg.preset)
        out.append(
            result(
                "config.preset",
                "Preset",
                "ok",
                f"preset {cfg.preset}" + (f" with model overrides {dict(cfg.model)}" if cfg.model else ""),
            )
        )
    except PresetError as exc:
        out.append(
            result("config.preset", "Preset", "fail", f"preset: {exc}", "cockpit presets list shows the presets")
        )

    will_create, absent = [], []
    for key, path, is_dir in (
        ("data.path", data.path, data.source == "shards"),
        ("tokenizer.path", cfg.tokenizer.path, True),
    ):
        if path.is_dir() if is_dir else path.is_file():
            continue
        # The demo makes its corpus; a text/jsonl run trains its tokenizer on the data at launch.
        made = not path.exists() and (
            data.source == "demo" or (key == "tokenizer.path" and data.source in ("text", "jsonl"))
        )
        (will_create if made else absent).append((key, path))
    if cfg.gate.baseline is not None and not cfg.gate.baseline.exists():  # a checkpoint or a METRICS.json
        absent.append(("gate.baseline", cfg.gate.baseline))
    if absent:
        out.append(
            result(
                "config.paths",
                "Paths",
                "fail",
                "; ".join(f"{k}: {p} {_missing(p)}" for k, p in absent),
                "fix the path in the config, or make the data first (cockpit data prepare)",
            )
        )
    elif will_create:
        out.append(
            result(
                "config.paths",
                "Paths",
                "ok",
                "will be created at launch: " + "; ".join(f"{k} {p}" for k, p in will_create),
                will_create=[str(p) for _, p in will_create],
            )
        )
    else:
        out.append(result("config.paths", "Paths", "ok", f"{data.path} and {cfg.tokenizer.path} exist"))

    sequences = train.micro_batch_size * train.grad_accum_steps * ctx.nproc
    tokens = sequences * train.seq_len
    out.append(
        result(
            "config.batch",
            "Global batch",
            "ok",
            f"{sequences:,} sequences per step = micro_batch_size {train.micro_batch_size} x grad_accum_steps "
            f"{train.grad_accum_steps} x {ctx.nproc} process(es); {tokens:,} tokens per step",
            sequences=sequences,
            tokens=tokens,
        )
    )

    positions, source = model_positions(cfg)
    if positions is not None and train.seq_len > positions:
        out.append(
            result(
                "config.seq_len",
                "Sequence length",
                "fail",
                f"train.seq_len {train.seq_len} is longer than the model's {positions} positions ({source})",
                f"lower train.seq_len to {positions} or less, or set model.max_position_embeddings",
            )
        )
    elif positions is not None:
        out.append(
            result(
                "config.seq_len",
                "Sequence length",
                "ok",
                f"train.seq_len {train.seq_len} <= {positions} positions ({source})",
            )
        )

    problems = []
    steps = train.max_steps
    if not train.epochs:
        if train.log_every > steps:
            problems.append(
                f"train.log_every {train.log_every} > train.max_steps {steps}: only the first and last steps are logged"
            )
        if train.save_every > steps:
            problems.append(f"train.save_every {train.save_every} > train.max_steps {steps}: only the final checkpoint")
        if train.eval_every > steps:
            problems.append(
                f"train.eval_every {train.eval_every} > train.max_steps {steps}: evaluated once, at the end"
            )
    evaluates = f"train.eval_every {train.eval_every}" if train.eval_every else "the gate" if cfg.gate.enabled else ""
    if evaluates and data.val_fraction == 0:
        out.append(
            result(
                "config.intervals",
                "Intervals",
                "fail",
                f"{evaluates} with data.val_fraction 0: nothing held out to evaluate",
                "set data.val_fraction (e.g. 0.01), or turn train.eval_every and the gate off",
            )
        )
    elif problems:
        out.append(
            result(
                "config.intervals",
                "Intervals",
                "warn",
                "; ".join(problems),
                "lower the interval or raise train.max_steps",
            )
        )
    else:
        saves = f"checkpoint every {train.save_every} steps" if train.save_every else "checkpoint at the end only"
        out.append(
            result(
                "config.intervals",
                "Intervals",
                "ok",
                f"{steps:,} steps, log every {train.log_every}, {saves}"
                + (f", eval every {train.eval_every}" if train.eval_every else ""),
            )
        )
    if train.save_every == 0 and steps >= 1000 and not train.epochs:
        out.append(
            result(
                "config.checkpoints",
                "Checkpoints",
                "warn",
                f"{steps:,} steps and train.save_every 0: a crash loses the whole run",
                "set train.save_every (e.g. every 30-60 minutes of training)",
            )
        )
    return out
