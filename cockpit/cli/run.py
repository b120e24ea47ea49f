"""`cockpit run CONFIG`: start a run and watch it (dashboard, --headless lines, or --detach)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import typer

from cockpit.cli.common import fail


def run(
    config: str = typer.Argument(..., help="Config file, or the name of a shipped config (demo)."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run directory (default: <runs_dir>/<name>-<time>)."),
    headless: bool = typer.Option(
        False, "--headless", help="Print progress lines instead of the dashboard; exit with the run's result."
    ),
    detach: bool = typer.Option(False, "--detach", help="Start the run, print its directory, and return."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set train.lr=1e-3 (repeatable)."),
    nproc: int = typer.Option(
        1, "--nproc", help="Training processes on this machine: one per GPU, or CPU workers (torchrun, gloo)."
    ),
    nnodes: int = typer.Option(
        1, "--nnodes", help="Machines taking part (each runs this command with its --node-rank)."
    ),
    node_rank: int = typer.Option(
        0, "--node-rank", help="This machine's index; node 0 owns the events and the dashboard."
    ),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="Address of node 0, reachable from every node."),
    master_port: int = typer.Option(29500, "--master-port", help="Rendezvous port on node 0."),
    resume: str | None = typer.Option(
        None,
        "--resume",
        metavar="latest|PATH",
        help="Continue a run from a checkpoint, in its own run directory: 'latest' "
        "(newest run of this config, or --run-dir), a run directory, or a checkpoint directory.",
    ),
) -> None:
    """Start a training run. The engine runs in its own session and keeps training when the
    cockpit closes; `cockpit attach` re-opens it."""
    from cockpit.launch import (
        Topology,
        count_events,
        join_run_dir,
        prepare_config,
        resume_target,
        spawn_engine,
        start_run,
        wait_until_started,
        write_run_config,
    )
    from engine.config import ConfigError
    from engine.distributed import check_strategy
    from engine.nvml import gpu_count
    from engine.rundir import RunPaths

    if headless and detach:
        fail("--headless and --detach exclude each other")
    resume_arg, from_seq = None, 0
    try:
        topology = Topology(nproc, nnodes, node_rank, master_addr, master_port)
        if resume is None and node_rank == 0:  # a new run: the launch the wizard makes too
            launched = start_run(config, set_, topology, run_dir, on_note=lambda n: typer.echo(f"note: {n}", err=True))
        else:  # continue a run from its checkpoint, or join node 0's run
            processes = topology.nproc * topology.nnodes
            config_path, cfg = prepare_config(config, set_)
            if topology.distributed:
                check_strategy(cfg.distributed, processes, cuda=gpu_count() > 0)
            if resume is not None:
                if node_rank > 0:
                    fail("--resume is given to node 0; the other nodes join with --run-dir")
                directory, resume_arg, run_cfg = resume_target(resume, cfg, config_path, run_dir, set_)
                _preflight(run_cfg, RunPaths(directory).run_yaml, processes)  # the run's data must still be there
                if set_:
                    write_run_config(directory, run_cfg)
                from_seq = count_events(directory)
            else:
                if run_dir is None:
                    fail("--node-rank > 0 needs --run-dir: the run directory node 0 uses, on a shared filesystem")
                _preflight(cfg, config_path, processes, data=False)  # node 0 checks (and makes) the data
                directory = join_run_dir(cfg, run_dir)
            launched = spawn_engine(directory, topology, resume=resume_arg)
    except ConfigError as exc:
        fail(str(exc))
    directory = launched.run_dir
    if resume_arg is not None:
        code = wait_until_started(launched, from_seq)
        if code is not None:  # the engine refused the checkpoint: its one line says why
            lines = RunPaths(directory).engine_log.read_text(errors="replace").strip().splitlines()
            fail(lines[-1].removeprefix("engine: ") if lines else f"engine exited with {code}", 2 if code == 2 else 1)
    if node_rank > 0:  # workers only: node 0 has the events and the dashboard
        typer.echo(
            f"node {node_rank}/{nnodes}: {nproc} engine process(es) for {directory}; "
            f"log: {RunPaths(directory).engine_log}"
        )
        raise typer.Exit(launched.process.wait())
    if detach:
        typer.echo(str(directory))
        return
    if headless:
        _headless(launched, from_seq)
        return
    from cockpit.cli.runs import open_dashboard

    open_dashboard(directory, pid=launched.pid)


def _preflight(cfg, config_path: Path, processes: int, data: bool = True) -> None:
    """Refuse what would fail in the engine (exit 2, one line), before anything is created; print
    the notes on what the run will do differently from what was written."""
    from cockpit.checks.config import notes
    from cockpit.checks.preflight import preflight

    problem = preflight(cfg, config_path, processes, data=data)
    if problem is not None:
        fail(problem)
    for note in notes(cfg):
        typer.echo(f"note: {note}", err=True)


def _headless(launched, from_seq: int = 0) -> None:
    from cockpit import headless
    from engine.rundir import RunPaths

    typer.echo(f"run {launched.run_dir} (engine pid {launched.pid}); log: {RunPaths(launched.run_dir).engine_log}")
    try:
        code = headless.follow(launched.run_dir, pid=launched.pid, from_seq=from_seq)
        try:
            launched.process.wait(timeout=60)  # the engine closes its files after the last event
        except subprocess.TimeoutExpired:
            pass
    except KeyboardInterrupt:
        typer.echo(
            f"\ndetached; the engine keeps training (pid {launched.pid}).\n"
            f"  watch: cockpit attach {launched.run_dir}\n  stop:  cockpit stop {launched.run_dir}"
        )
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
