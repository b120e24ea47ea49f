"""Run configuration: typed models with a docstring per field, validated at load time.

Torch-free by contract: the cockpit loads and validates configs without importing torch.

A config file is YAML. Relative paths in it are resolved against the directory the command runs
from, and ``run.yaml`` in the run directory holds the resolved, absolute form.

Why this module is about 400 lines: it is the config's one definition, every section with a
docstring per field, and the loader that names the file and key of each problem.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.nesting import nested_deeper


class ConfigError(ValueError):
    """A config a user wrote is wrong; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, validate_assignment=True, allow_inf_nan=False
    )


class DemoDataConfig(_Section):
    samples: int = Field(20_000, ge=100)
    """Number of lines the demo corpus generator writes."""
    seed: int = 1234
    """Seed of the demo corpus generator; the same seed gives the same corpus byte for byte."""


class DataConfig(_Section):
    source: Literal["demo", "text", "jsonl", "shards"] = "demo"
    """Where the training tokens come from:
    ``demo``: generate the synthetic demo corpus at ``path`` if it is missing, then as ``text``.
    ``text``: the existing UTF-8 text file at ``path``, its documents cut by ``text_unit``.
    ``jsonl``: the file at ``path`` with one JSON object per line whose ``"text"`` string is a
    document (smoke runs); a malformed line stops the run naming ``file:line``.
    ``shards``: the prepared token shards in the directory ``path`` (``cockpit data prepare``, or
    ``python -m engine.data.shards``), memory-mapped, never loaded whole; they must have been
    written with this run's tokenizer and ``train.seq_len``."""
    path: Path = Path("data/demo/corpus.txt")
    """The training text file (``demo``, ``text``), JSONL file (``jsonl``) or shard directory
    (``shards``)."""
    text_unit: Literal["auto", "line", "paragraph", "file"] = "auto"
    """What a document of a text file (``demo``, ``text``) is; each is followed by the end-of-text
    token, and exact duplicates and short documents are judged per document (``cockpit data
    prepare --text-unit`` takes the same values). ``line``: every non-empty line. ``paragraph``:
    every block of lines between blank lines, its newlines kept (a book, a play). ``file``: the
    whole file. ``auto``: ``paragraph`` when the head of the file has blank-line separated blocks of
    several lines, else ``line`` (``engine.data.formats.choose_text_unit``)."""
    val_fraction: float = Field(0.01, ge=0.0, lt=0.5)
    """Share of the token stream held out for validation (its tail). Shards prepared with a
    validation split (``cockpit data prepare --val-fraction``) are evaluated on that split instead."""
    max_line_bytes: int = Field(1 << 20, ge=1, le=1 << 30)
    """The longest line a data file (``demo``, ``text``, ``jsonl``) may have, in bytes (its newline
    not counted; 1 MiB by default). A longer line is refused naming ``file:line`` by ``cockpit
    check``, the launch's pre-flight and the engine, and is never read into memory whole (``cockpit
    data validate|stats|prepare --max-line-bytes`` takes the same limit)."""
    demo: DemoDataConfig = DemoDataConfig()
    """Settings of the demo corpus generator (used when ``source`` is ``demo``)."""


class TokenizerConfig(_Section):
    path: Path = Path("data/demo/tokenizer")
    """Directory of a Hugging Face tokenizer (``tokenizer.json``). Trained on the corpus when it
    does not exist yet."""
    vocab_size: int = Field(1024, ge=260, le=262_144)
    """Vocabulary size when the tokenizer has to be trained."""


class TrainConfig(_Section):
    seq_len: int = Field(128, ge=8)
    """Tokens per training sequence."""
    micro_batch_size: int = Field(16, ge=1)
    """Sequences per forward/backward pass on one process."""
    grad_accum_steps: int = Field(1, ge=1)
    """Micro batches accumulated into one optimizer step."""
    max_steps: int = Field(300, ge=1)
    """Optimizer steps of the whole run (ignored when ``epochs`` is set)."""
    epochs: float = Field(0.0, ge=0)
    """When > 0, train this many passes over the training sequences instead of ``max_steps``: the
    engine sets ``max_steps = ceil(epochs x sequences / sequences per optimizer step)`` once it has
    read the data, and reports it in ``hello``."""
    lr: float = Field(3e-3, gt=0)
    """Peak learning rate."""
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    """Final learning rate as a fraction of ``lr`` (cosine schedule)."""
    warmup_steps: int = Field(30, ge=0)
    """Linear warm-up steps from 0 to ``lr``; a run shorter than this warms up over all its steps
    (``warmup``: clamped to ``max_steps``, with a note)."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warm-up."""
    weight_decay: float = Field(0.1, ge=0)
    """AdamW weight decay, applied to matrices only (not to norms or biases)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas, each in [0, 1)."""

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in value):
            raise ValueError(f"each AdamW beta must be in [0, 1), got [{value[0]:g}, {value[1]:g}]")
        return value

    grad_clip: float = Field(1.0, ge=0)
    """Clip the global gradient norm to this value; 0 disables clipping."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Mixed precision mode passed to Accelerate (``fp32`` means none)."""
    seed: int = 1234
    """Seed for model initialisation and data order."""
    log_every: int = Field(10, ge=1)
    """Steps between ``metrics`` events (step 1 is always logged)."""
    save_every: int = Field(0, ge=0)
    """Steps between checkpoints; 0 saves only at the end (and on command)."""
    threads: int = Field(0, ge=0)
    """CPU threads for torch; 0 lets torch decide."""
    nonfinite: Literal["skip", "stop", "off"] = "skip"
    """What a step whose loss or gradient norm is NaN/inf does. ``skip``: the optimizer skips that
    update on the device (fused AdamW's ``found_inf``, as a grad scaler does), the step still counts
    and the learning-rate schedule goes on; the skipped steps are read back with the metrics, so
    their ``error`` events arrive at the next logging step and the loop never waits for the device.
    ``stop``: checks every step on the host (one sync per step), saves a checkpoint of the last good
    state (the bad update is never applied) and ends the run ``failed``. ``off``: no check."""

    @field_validator("nonfinite", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML reads a bare `off` as false

    nonfinite_max_skips: int = Field(10, ge=1)
    """With ``nonfinite: skip``, this many non-finite steps in a row end the run ``failed`` with a
    checkpoint (found at the logging step after them; none of their updates was applied)."""
    price_per_hour: float = Field(0.0, ge=0)
    """What the machine costs in USD per hour; non-zero adds a running ``cost_usd`` (training wall
    time since the run's first step, summed over resumes, start-up excluded) to the metrics."""
    budget_usd: float = Field(0.0, ge=0)
    """Checkpoint and stop (``stopped``) before ``cost_usd`` would pass this; 0 means no budget.
    Needs ``price_per_hour``."""
    max_hours: float = Field(0.0, ge=0)
    """Checkpoint and stop (``stopped``) before the training wall time would pass this many hours;
    0 means no limit."""
    eval_every: int = Field(0, ge=0)
    """Steps between evaluations on the held-out split (``eval`` events: loss, perplexity; also at
    the last step); 0 turns evaluation off."""
    eval_batches: int = Field(20, ge=1)
    """Micro batches of held-out sequences per evaluation (the same ones every time)."""
    save_total_limit: int = Field(0, ge=0)
    """Keep at most this many checkpoints, deleting the oldest (``checkpoint`` events with action
    ``pruned``); the latest and the one with the best held-out loss are always kept. 0 keeps all."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of storing them: less memory (a larger
    micro batch fits), about a third more compute."""
    compile: bool = False
    """Compile the model with ``torch.compile`` (in place: checkpoints keep their usual layout).
    The first steps wait for the compilation (tens of seconds), later ones are faster on a GPU."""

    @model_validator(mode="after")
    def _check_budget(self) -> TrainConfig:
        if self.budget_usd and not self.price_per_hour:
            raise ValueError("train.budget_usd needs train.price_per_hour (USD per hour of this machine)")
        return self

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.seq_len * self.micro_batch_size

    @property
    def warmup(self) -> int:
        """The warm-up steps the run takes: ``warmup_steps``, at most ``max_steps`` (with ``epochs``,
        once the engine has set ``max_steps`` from the data)."""
        return min(self.warmup_steps, self.max_steps)

    def warmup_note(self) -> str | None:
        """The note saying that ``warmup_steps`` is clamped to a shorter run, or None."""
        if self.warmup == self.warmup_steps:
            return None
        return (
            f"train.warmup_steps {self.warmup_steps} is clamped to train.max_steps {self.max_steps}: "
            f"the learning rate warms up over the whole run"
        )


class GateConfig(_Section):
    """The in-run gate: at its steps, evaluate on the held-out split and stop the run (``stopped``,
    reason ``gate: ...``, a checkpoint written first) when it is not improving by ``min_improvement``
    on the baseline. Off while neither ``every`` nor ``at_steps`` is set. ``cockpit ckpt gate``
    applies the same rule (``engine.gate``) to a finished checkpoint."""

    baseline: Path | None = None
    """What to beat: a checkpoint directory (evaluated once, at the start, on this run's held-out
    windows), or a METRICS.json file (an object with ``eval_loss`` and/or ``perplexity``, e.g. the
    output of ``cockpit ckpt eval --json``). None: the run's own first evaluation (its first gate
    step, or an earlier ``train.eval_every`` evaluation) is the baseline."""
    metric: Literal["eval_loss", "perplexity"] = "eval_loss"
    """The metric compared; both are lower-is-better (perplexity is exp(eval_loss))."""
    min_improvement: float = 0.05
    """The relative improvement asked for: ``(baseline - value) / baseline`` must be at least this.
    Written ``0.05`` or ``"5%"`` (the same); negative (``"-2%"``) tolerates that much regression."""
    every: int = Field(0, ge=0)
    """Judge every this many steps (0: only at ``at_steps``)."""
    at_steps: list[int] = []
    """Judge at these steps (each >= 1), besides ``every``."""

    @field_validator("min_improvement", mode="before")
    @classmethod
    def _improvement(cls, value: Any) -> float:
        from engine.gate import parse_improvement

        return parse_improvement(value)

    @field_validator("at_steps")
    @classmethod
    def _positive_steps(cls, value: list[int]) -> list[int]:
        if any(step < 1 for step in value):
            raise ValueError(f"gate steps are >= 1, got {[s for s in value if s < 1]}")
        return sorted(set(value))

    @property
    def enabled(self) -> bool:
        return bool(self.every or self.at_steps)


class TelemetryConfig(_Section):
    enabled: bool = True
    """Sample CPU, RAM and GPU usage in a background thread and emit ``telemetry`` events."""
    interval_s: float = Field(2.0, gt=0)
    """Seconds between telemetry samples."""


class EventsConfig(_Section):
    enabled: bool = True
    """Serve the live socket. ``events.jsonl`` is always written; turning this off is for
    benchmarks only."""


class FSDPConfig(_Section):
    reshard_after_forward: bool = True
    """Free each layer's gathered weights after its forward pass and gather them again for the
    backward pass (ZeRO-3: the least memory), or keep them until then (ZeRO-2-like: less
    communication, more memory)."""
    cpu_offload: bool = False
    """Keep the sharded parameters, gradients and optimizer state in CPU memory between uses: much
    slower, for a model whose training state does not fit in the GPUs' memory otherwise."""


class DistributedConfig(_Section):
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """How several processes (``cockpit run --nproc``) share the work. ``ddp``: every GPU holds the
    whole model, gradients and optimizer state, and gradients are averaged (the fastest while it
    fits). ``fsdp``: PyTorch FSDP2 through Accelerate: parameters, gradients and optimizer state are
    sharded across the GPUs, one unit per decoder layer, for models whose training state does not
    fit on one GPU. FSDP needs CUDA GPUs; one process ignores the strategy. Checkpoints are the
    same full state dicts either way, so a run can resume under the other strategy."""
    fsdp: FSDPConfig = FSDPConfig()
    """FSDP settings (with ``strategy: fsdp``)."""


class UploadConfig(_Section):
    """Copies of every complete checkpoint on other machines, made in the background while training
    goes on (engine/uploads.py): ``<target>/<run id>/checkpoints/checkpoint-<step>/``, the layout of a
    run directory, each copy verified against the checkpoint's manifest before it counts. Off while
    ``targets`` is empty."""

    targets: list[str] = []
    """Where copies go, as fsspec URLs: ``file:///mnt/backup``, ``sftp://user@host/path`` (keys
    from the ssh agent or ``~/.ssh``), ``s3://bucket/prefix`` (``AWS_*`` environment or ``~/.aws``;
    ``AWS_ENDPOINT_URL`` for S3-compatible stores), ``gs://bucket/prefix``
    (``GOOGLE_APPLICATION_CREDENTIALS``). Credentials never go here: a URL with a password or token
    (``user:secret@``) or a query string is refused. With targets, a checkpoint past
    ``train.save_total_limit`` is deleted only once every target holds a verified copy."""
    retries: int = Field(5, ge=0, le=100)
    """Tries after a failed file transfer, with exponential backoff and jitter (0.5 s, 1 s, 2 s, ...)
    before an upload counts as failed; a failed upload is tried again at the next checkpoint and at
    the next start."""
    parallel_files: int = Field(2, ge=1, le=16)
    """Files of one checkpoint sent at a time (threads; each verified on its own). Over SFTP always
    one: its one channel per connection would only interleave them."""
    stop_wait_s: float = Field(300.0, ge=0)
    """At the end of a run (finished, stopped or failed), wait this many seconds at most for the
    uploads still to do; what is left then is said in a log line, and ``cockpit ckpt upload RUN``
    finishes it."""

    @field_validator("targets")
    @classmethod
    def _no_credentials(cls, value: list[str]) -> list[str]:
        from engine.transfer import check_target

        for url in value:
            check_target(url)  # ValueError names the URL (redacted) and where credentials go instead
        if len(set(value)) != len(value):
            raise ValueError("a target is listed twice")
        return value


class RunConfig(_Section):
    """One training run, as written in a config file and resolved into ``run.yaml``."""

    name: str | None = None
    """Run name; the run directory is ``<runs_dir>/<name>-<timestamp>`` unless given explicitly. One
    plain name: no ``/``, ``\\`` or ``..`` (a run directory never lands outside ``runs_dir``)."""
    runs_dir: Path = Path("runs")
    """Where run directories are created."""
    preset: str = "tiny"
    """Model preset from ``presets/`` (``cockpit presets list``)."""
    model: dict[str, Any] = {}
    """Overrides of preset fields, e.g. ``{num_hidden_layers: 4}``; sizes and counts are positive
    integers (``presets.check_overrides``)."""
    data: DataConfig = DataConfig()
    """Training data."""
    tokenizer: TokenizerConfig = TokenizerConfig()
    """Tokenizer."""
    train: TrainConfig = TrainConfig()
    """Optimisation and loop settings."""
    distributed: DistributedConfig = DistributedConfig()
    """Several processes: data parallel or sharded."""
    gate: GateConfig = GateConfig()
    """The in-run gate: stop a run that is not improving on a baseline."""
    telemetry: TelemetryConfig = TelemetryConfig()
    """Machine telemetry."""
    events: EventsConfig = EventsConfig()
    """Live event channel."""
    upload: UploadConfig = UploadConfig()
    """Background uploads of every checkpoint to other machines."""

    @field_validator("name")
    @classmethod
    def _one_component(cls, value: str | None) -> str | None:
        from engine.safe_path import component

        if value is not None:
            component(value, "run name")  # UnsafePath (a ValueError): the run directory stays in runs_dir
        return value

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        from presets import preset_path

        preset_path(value)  # PresetError (a ValueError) names the known presets
        return value

    @model_validator(mode="after")
    def _check_model(self) -> RunConfig:
        from presets import check_overrides

        check_overrides(self.preset, self.model)  # PresetError names the key: model.<field>
        return self

    def resolved(self, base: Path | None = None) -> RunConfig:
        """A copy whose relative paths are made absolute against ``base`` (default: the cwd)."""
        base = Path(base or os.getcwd())
        data = self.model_dump()
        data["runs_dir"] = str((base / self.runs_dir).resolve())
        data["data"]["path"] = str((base / self.data.path).resolve())
        data["tokenizer"]["path"] = str((base / self.tokenizer.path).resolve())
        if self.gate.baseline is not None:
            data["gate"]["baseline"] = str((base / self.gate.baseline).resolve())
        return RunConfig.model_validate(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --- loading ----------------------------------------------------------------------------------


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_known_keys(ann, prefix + name + "."))
    return keys


def _did_you_mean(key: str) -> str:
    matches = difflib.get_close_matches(key, _known_keys(RunConfig), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _allowed_range(loc: tuple) -> str:
    """``> 0``, ``>= 0, < 0.5``...: the bounds of the numeric field at ``loc``, or ``""``."""
    model: Any = RunConfig
    info = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not isinstance(part, str) or not fields or part not in fields:
            return ""
        info = fields[part]
        model = info.annotation
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    bounds = [
        f"{sym} {getattr(m, name):g}"
        for m in (info.metadata if info else ())
        for name, sym in symbols.items()
        if getattr(m, name, None) is not None
    ]
    return ", ".join(bounds)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config mapping, tied to the key it is about."""

    key: str
    """The dotted key (``train.lr``); ``""`` for a check across fields, whose message names them."""
    message: str
    """What is wrong and what is allowed (``-1 is not allowed: a finite number >= 0``)."""
    unknown: bool = False
    """The key is not a config key at all (the message is a "did you mean")."""

    def line(self, where: str) -> str:
        """``FILE: key: message``, as ``cockpit run`` and ``cockpit check`` print it."""
        if self.unknown:
            return f"{where}: {self.message}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def config_problems(exc: ValidationError) -> list[ConfigProblem]:
    """The problems of a failed ``RunConfig`` validation, one per key."""
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "finite_number":
            allowed = _allowed_range(err["loc"])
            msg = f"{err['input']} is not allowed: a finite number" + (f" {allowed}" if allowed else "")
        if err["type"] == "extra_forbidden":
            problems.append(ConfigProblem(key, f"unknown key '{key}'{_did_you_mean(key)}", unknown=True))
        else:
            problems.append(ConfigProblem(key, msg))
    return problems


def validate_config(data: dict[str, Any]) -> tuple[RunConfig | None, list[ConfigProblem]]:
    """A config mapping validated: the config, or None and every problem with its key. For editors
    that show each problem next to its field (the wizard's review); files go through ``load_config``."""
    try:
        return RunConfig.model_validate(data), []
    except ValidationError as exc:
        return None, config_problems(exc)


def _format_validation_error(exc: ValidationError, where: str) -> str:
    return "\n".join(problem.line(where) for problem in config_problems(exc))


def parse_override(item: str) -> tuple[list[str], Any]:
    """``train.lr=1e-3`` -> (["train", "lr"], 0.001); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
        too_deep = nested_deeper(value, MAX_CONFIG_DEPTH)
    except yaml.YAMLError:
        value, too_deep = raw, False
    except RecursionError:
        value, too_deep = None, True
    if too_deep:
        raise ConfigError(f"--set {key}=...: the value nests more than {MAX_CONFIG_DEPTH} levels deep")
    return key.split("."), value


def set_dotted(data: dict, key: str, value: Any) -> dict:
    """``set_dotted(d, "train.lr", 1e-3)`` sets ``d["train"]["lr"]``, making sections as needed."""
    node = data
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: '{part}' is not a section")
        node = child
    node[leaf] = value
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--set key=value`` items to a config mapping."""
    for item in overrides:
        path, value = parse_override(item)
        try:
            set_dotted(data, ".".join(path), value)
        except ConfigError as exc:
            raise ConfigError(f"--set {item!r}: {exc}") from None
    return data


#: A config file larger than this is refused before it is parsed (a real one is a few KiB).
MAX_CONFIG_BYTES = 1 << 20
#: Sections and lists nested deeper than this are refused (a real config nests three or four deep).
MAX_CONFIG_DEPTH = 32


def _parse_yaml(text: str, where: str) -> Any:
    """``text`` parsed as YAML, nested at most MAX_CONFIG_DEPTH deep; ConfigError naming ``where``."""
    try:
        data = yaml.safe_load(text)
        too_deep = nested_deeper(data, MAX_CONFIG_DEPTH)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark else where
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{at}: invalid YAML: {problem}") from None
    except RecursionError:
        data, too_deep = None, True
    if too_deep:
        raise ConfigError(
            f"{where}: nested more than {MAX_CONFIG_DEPTH} levels deep; a config is a few sections of keys "
            "(every key is documented in engine/config.py)"
        )
    return data


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read, override and validate a config file; raises ConfigError with a clear message."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES and path.is_file():
            raise ConfigError(
                f"{path}: {size:,} bytes, larger than a config can be ({MAX_CONFIG_BYTES:,}); "
                "is it the right file? (data goes in data.path, not in the config)"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    data = _parse_yaml(text, str(path))
    if data is None:
        raise ConfigError(
            f"{path}: is empty; write the keys to change (every key is documented in "
            f"engine/config.py), or run the shipped demo: cockpit run demo"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    data = apply_overrides(data, list(overrides))
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, str(path))) from None


def read_run_config(run_dir: str | os.PathLike) -> RunConfig:
    """The resolved config of a run directory (``run.yaml``)."""
    from engine.rundir import RunPaths

    return load_config(RunPaths(Path(run_dir)).run_yaml)
