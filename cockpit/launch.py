"""Create a run directory and start its engine as a detached process. Torch-free.

The engine gets its own session (``start_new_session``): closing the terminal, the app, or the
SSH connection does not stop training. Its stdout and stderr go to ``logs/engine.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import configs
from engine.atomic import atomic_write_text
from engine.config import ConfigError, RunConfig, load_config
from engine.nvml import gpu_count
from engine.protocol import TERMINAL_STATES
from engine.rundir import RunPaths


@dataclass
class LaunchedRun:
    run_dir: Path
    """The run directory created for the run."""
    pid: int
    """The engine's process id (the launcher's, for several processes)."""
    process: subprocess.Popen
    """The engine process, detached from this one's session."""


def resolve_config_path(name_or_path: str) -> Path:
    """A config file path, or the name of a shipped config (``demo``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        return path
    builtin = configs.builtin(name_or_path)
    if builtin is None:
        shipped = ", ".join(sorted(p.stem for p in configs.DIR.glob("*.yaml")))
        raise ConfigError(
            f"{name_or_path}: no such config file, and no shipped config of that name (shipped: {shipped})"
        )
    return builtin


def prepare_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[Path, RunConfig]:
    path = resolve_config_path(name_or_path)
    return path, load_config(path, overrides).resolved()


def new_run_dir(cfg: RunConfig, config_path: Path, run_dir: Path | None = None) -> Path:
    """Create the run directory (mode 0700) with its resolved ``run.yaml``."""
    if run_dir is None:
        stem = cfg.name or config_path.stem
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = cfg.runs_dir / f"{stem}-{stamp}"
        n = 2
        while run_dir.exists():
            run_dir = cfg.runs_dir / f"{stem}-{stamp}-{n}"
            n += 1
    run_dir = Path(run_dir).resolve()
    paths = RunPaths(run_dir)
    if paths.run_yaml.exists():
        raise ConfigError(f"{run_dir}: already holds a run ({paths.run_yaml.name} exists); choose another --run-dir")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    paths.logs.mkdir(exist_ok=True)
    write_run_config(run_dir, cfg)
    return run_dir


@dataclass(frozen=True)
class Topology:
    """How many engine processes, on how many machines (``cockpit run --nproc/--nnodes ...``)."""

    nproc: int = 1
    """Processes on this machine (one per GPU, or CPU workers)."""
    nnodes: int = 1
    """Machines taking part."""
    node_rank: int = 0
    """This machine's index, 0 on the machine that owns the event bus and the dashboard."""
    master_addr: str = "127.0.0.1"
    """Address of node 0, reachable from every node."""
    master_port: int = 29500
    """TCP port of the rendezvous on node 0."""

    def __post_init__(self) -> None:
        if self.nproc < 1 or self.nnodes < 1:
            raise ConfigError("--nproc and --nnodes must be at least 1")
        if not 0 <= self.node_rank < self.nnodes:
            raise ConfigError(f"--node-rank {self.node_rank} is outside 0..{self.nnodes - 1}")
        if not 0 < self.master_port < 65536:
            raise ConfigError(f"--master-port {self.master_port} is not a TCP port")

    @property
    def distributed(self) -> bool:
        return self.nproc * self.nnodes > 1


def engine_command(
    run_dir: Path, topology: Topology = Topology(), gpus: int | None = None, resume: str | None = None
) -> list[str]:
    """The command line that starts the engine processes of a run.

    One process: ``python -m engine``. Several on GPUs: ``accelerate launch --multi_gpu`` (DDP).
    Several on CPUs: ``torchrun`` (gloo); ``accelerate launch --cpu --num_processes N`` would start only
    one process."""
    engine = ["-m", "engine", "--run-dir", str(run_dir), *(["--resume", resume] if resume else [])]
    t = topology
    if not t.distributed:
        return [sys.executable, *engine]
    if gpus is None:
        gpus = gpu_count()
    if gpus:
        return [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            str(t.nproc * t.nnodes),
            "--num_machines",
            str(t.nnodes),
            "--machine_rank",
            str(t.node_rank),
            "--main_process_ip",
            t.master_addr,
            "--main_process_port",
            str(t.master_port),
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            *engine,
        ]
    rendezvous = (
        ["--standalone"]
        if t.nnodes == 1
        else [
            "--nnodes",
            str(t.nnodes),
            "--node_rank",
            str(t.node_rank),
            "--master_addr",
            t.master_addr,
            "--master_port",
            str(t.master_port),
        ]
    )
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(t.nproc), *rendezvous, *engine]


def join_run_dir(cfg: RunConfig, run_dir: Path) -> Path:
    """The run directory a non-zero node joins: node 0 made it (shared filesystem), or this node
    makes it with the same resolved config."""
    run_dir = Path(run_dir).resolve()
    paths = RunPaths(run_dir)
    if paths.run_yaml.exists():
        theirs = load_config(paths.run_yaml)
        if theirs.model_dump() != cfg.model_dump():
            raise ConfigError(f"{paths.run_yaml}: node 0 wrote a different config; run the same config on every node")
        paths.logs.mkdir(exist_ok=True)
        return run_dir
    return new_run_dir(cfg, run_dir, run_dir)


def spawn_engine(run_dir: Path, topology: Topology = Topology(), resume: str | None = None) -> LaunchedRun:
    """Start the engine of ``run_dir`` detached from this process and terminal."""
    paths = RunPaths(run_dir)
    paths.logs.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if topology.distributed:
        env.setdefault("OMP_NUM_THREADS", "1")  # what torchrun would set anyway, minus its warning
    with open(paths.engine_log, "ab") as log:
        proc = subprocess.Popen(
            engine_command(run_dir, topology, resume=resume),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    return LaunchedRun(run_dir=run_dir, pid=proc.pid, process=proc)


def start_run(
    config: str | os.PathLike,
    overrides: list[str] | tuple[str, ...] = (),
    topology: Topology = Topology(),
    run_dir: Path | None = None,
    on_note: Callable[[str], None] | None = None,
) -> LaunchedRun:
    """Start a new run of ``config`` (a file, or a shipped config's name) as ``cockpit run`` does:
    load it with the ``--set`` ``overrides``, refuse what the engine would refuse (the preflight's one
    line, before anything is created), give ``on_note`` each note on what the run will do otherwise
    than written, create the run directory and spawn the engine detached.
    Raises ConfigError naming the file and key; then nothing is left behind."""
    from cockpit.checks.config import notes
    from cockpit.checks.preflight import preflight
    from engine.distributed import check_strategy

    processes = topology.nproc * topology.nnodes
    config_path, cfg = prepare_config(str(config), overrides)
    if topology.distributed:
        check_strategy(cfg.distributed, processes, cuda=gpu_count() > 0)
    problem = preflight(cfg, config_path, processes)
    if problem is not None:
        raise ConfigError(problem)
    for note in notes(cfg) if on_note is not None else ():
        on_note(note)
    return spawn_engine(new_run_dir(cfg, config_path, run_dir), topology)


def find_run(ref: str | None, runs_dir: Path) -> Path:
    """A run directory from a path, a name under ``runs_dir``, a unique name prefix, or None for
    the newest run. Raises ConfigError naming what was looked for."""
    from cockpit.client import iter_runs

    if ref is None:
        runs = iter_runs(runs_dir)
        if not runs:
            raise ConfigError(f"{runs_dir}: no runs yet (start one with `cockpit run demo`)")
        return runs[0]
    path = Path(ref)
    if RunPaths(path).is_run_dir():
        return path.resolve()
    if path.exists():
        raise ConfigError(f"{ref}: not a run directory (no {RunPaths(path).run_yaml.name})")
    candidate = runs_dir / ref
    if RunPaths(candidate).is_run_dir():
        return candidate.resolve()
    matches = [p for p in iter_runs(runs_dir) if p.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0].resolve()
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches[:5])
        raise ConfigError(f"{ref}: matches several runs in {runs_dir}: {names}")
    raise ConfigError(f"{ref}: no such run in {runs_dir} (`cockpit runs` lists them)")


def resume_target(
    spec: str, cfg: RunConfig, config_path: Path, run_dir: Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[Path, str, RunConfig]:
    """The run directory to continue, the engine's ``--resume`` argument, and the run's config.

    ``latest``: the newest checkpoint of ``--run-dir``, or of the newest run of this config under
    ``runs_dir``. ``PATH``: a run directory (its newest checkpoint) or a checkpoint directory.
    The config is the run's own ``run.yaml`` with the ``--set`` overrides applied (to extend
    ``train.max_steps``, say); ``write_run_config`` saves it once the caller has checked it.
    Raises ConfigError naming what is wrong; changes nothing."""
    from cockpit.client import iter_runs
    from engine.rundir import LATEST_SPEC, read_status

    if spec == LATEST_SPEC:
        if run_dir is not None:
            target, arg = Path(run_dir), LATEST_SPEC
        else:
            stem = cfg.name or config_path.stem
            runs = [
                r for r in iter_runs(cfg.runs_dir) if r.name.startswith(f"{stem}-") and RunPaths(r).latest.is_file()
            ]
            if not runs:
                raise ConfigError(f"{cfg.runs_dir}: no run of '{stem}' with a checkpoint to resume")
            target, arg = runs[0], LATEST_SPEC
    else:
        path = Path(spec)
        owner = RunPaths(path.parent.parent)  # the run of a checkpoint directory
        if RunPaths(path).is_run_dir():
            target, arg = path, LATEST_SPEC
        elif path.is_dir() and path.parent.name == owner.checkpoints.name and owner.is_run_dir():
            target, arg = path.parent.parent, str(path.resolve())
        else:
            raise ConfigError(f"{spec}: neither a run directory nor a checkpoint directory of a run")
    target = target.resolve()
    paths = RunPaths(target)
    if not paths.is_run_dir():
        raise ConfigError(f"{target}: not a run directory (no {paths.run_yaml.name})")
    if arg == LATEST_SPEC and not paths.latest.is_file():
        raise ConfigError(f"{target}: has no checkpoint to resume from (no {paths.relative(paths.latest)})")
    status = read_status(target)
    if status.get("alive") and status.get("state") not in TERMINAL_STATES:  # terminal: bus closed, exiting
        raise ConfigError(f"{target}: its engine is still running; `cockpit attach` it instead")
    return target, arg, load_config(paths.run_yaml, overrides)


def branch_from_checkpoint(ckpt_dir: Path) -> LaunchedRun:
    """Start a new run that continues from the checkpoint ``ckpt_dir`` of a run: a new run directory
    ``<run>-from-<step>`` beside it with the run's config, the engine resuming there from the
    checkpoint (``--resume PATH``: weights, optimizer, schedule, RNG and data position). The run it
    came from is not touched, live or finished, so continuing from an earlier checkpoint never
    overwrites the later ones. Raises ConfigError naming what is wrong; then nothing is created."""
    from cockpit.checks.preflight import preflight
    from engine.rundir import checkpoint_step

    ckpt = Path(ckpt_dir).resolve()
    source = RunPaths(ckpt.parent.parent)
    step = checkpoint_step(ckpt.name)
    if step is None or not ckpt.is_dir() or ckpt.parent != source.checkpoints or not source.is_run_dir():
        raise ConfigError(f"{ckpt}: not a checkpoint directory of a run")
    cfg = load_config(source.run_yaml)
    problem = preflight(cfg, source.run_yaml, 1)  # the run's data must still be there
    if problem is not None:
        raise ConfigError(problem)
    run_dir, n = source.root.parent / f"{source.root.name}-from-{step}", 2
    while run_dir.exists():
        run_dir, n = source.root.parent / f"{source.root.name}-from-{step}-{n}", n + 1
    return spawn_engine(new_run_dir(cfg, source.run_yaml, run_dir), Topology(), resume=str(ckpt))


def write_run_config(run_dir: Path, cfg: RunConfig) -> None:
    """Replace the run's ``run.yaml`` (atomically) with ``cfg``."""
    atomic_write_text(RunPaths(run_dir).run_yaml, cfg.to_yaml())


def wait_until_started(launched: LaunchedRun, events_before: int, timeout: float = 120.0) -> int | None:
    """Wait until the engine writes its first new event (it accepted the run) or exits; returns its
    exit code if it exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = launched.process.poll()
        if code is not None:
            return code
        if count_events(launched.run_dir) > events_before:
            return None
        time.sleep(0.1)
    return None


def count_events(run_dir: Path) -> int:
    try:
        with open(RunPaths(run_dir).events, "rb") as f:
            return sum(1 for line in f if line.endswith(b"\n"))
    except FileNotFoundError:
        return 0
