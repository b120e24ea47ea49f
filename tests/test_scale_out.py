"""Scale-out: the launcher picks torchrun on CPUs and `accelerate launch --multi_gpu` on GPUs; a real
2-process CPU DDP run (gloo) matches a 1-process run (trained in-process) with the same global batch."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import events_of, small_run_config, train_in_process
from typer.testing import CliRunner

from cockpit.cli import app
from cockpit.launch import Topology, engine_command, new_run_dir, prepare_config
from engine.config import ConfigError

RUN = Path("/runs/r")


def test_one_process_is_plain_python_m_engine():
    assert engine_command(RUN, Topology(), gpus=8) == [sys.executable, "-m", "engine", "--run-dir", "/runs/r"]


def test_several_cpu_processes_use_torchrun_standalone():
    cmd = engine_command(RUN, Topology(nproc=4), gpus=0)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "4" and "--standalone" in cmd
    assert cmd[-4:] == ["-m", "engine", "--run-dir", "/runs/r"]


def test_several_cpu_nodes_name_the_rendezvous():
    cmd = engine_command(
        RUN, Topology(nproc=2, nnodes=3, node_rank=1, master_addr="10.0.0.5", master_port=1234), gpus=0
    )
    assert "--standalone" not in cmd
    pairs = dict(zip(cmd[3:13:2], cmd[4:14:2]))
    assert pairs == {
        "--nproc_per_node": "2",
        "--nnodes": "3",
        "--node_rank": "1",
        "--master_addr": "10.0.0.5",
        "--master_port": "1234",
    }


def test_gpus_use_accelerate_launch_multi_gpu_with_the_total_process_count():
    cmd = engine_command(RUN, Topology(nproc=8, nnodes=2, node_rank=1, master_addr="node0"), gpus=8)
    assert cmd[:4] == [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    assert cmd[cmd.index("--num_processes") + 1] == "16"
    assert cmd[cmd.index("--num_machines") + 1] == "2" and cmd[cmd.index("--machine_rank") + 1] == "1"
    assert cmd[cmd.index("--main_process_ip") + 1] == "node0"
    assert "--cpu" not in cmd  # `accelerate launch --cpu --num_processes 2` starts one process only


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"nproc": 0}, "at least 1"),
        ({"nnodes": 2, "node_rank": 2}, "outside 0..1"),
        ({"master_port": 70000}, "not a TCP port"),
    ],
)
def test_bad_topology_is_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Topology(**kwargs)


def test_cli_bad_topology_exits_2(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["run", "demo", "--detach", "--nnodes", "2", "--node-rank", "5"])
    assert result.exit_code == 2 and "--node-rank 5 is outside 0..1" in result.output
    result = runner.invoke(app, ["run", "demo", "--detach", "--nnodes", "2", "--node-rank", "1"])
    assert result.exit_code == 2 and "--node-rank > 0 needs --run-dir" in result.output


@pytest.mark.slow
def test_two_cpu_processes_match_one_and_stop_together_on_a_stop_command(tmp_path, engine_data_dir):
    """Two CPU processes (torchrun, gloo) with half the micro batch each log the losses of one process
    with the whole batch; a stop command reaches rank 0 only, the processes agree on it at their next
    control sync, so both leave the loop at the same step and write one final checkpoint together,
    which then resumes in one process (full state dicts do not depend on the process count)."""
    import time

    from helpers import wait_for

    from engine.rundir import read_status

    max_steps = 60
    config = tmp_path / "ddp.yaml"
    overrides = {"runs_dir": str(tmp_path / "runs"), "train.max_steps": max_steps, "train.log_every": 1}
    config.write_text(small_run_config(engine_data_dir, overrides).to_yaml())
    run_dir = tmp_path / "two"
    started = subprocess.run(
        [sys.executable, "-m", "cockpit", "run", str(config), "--detach", "--nproc", "2", "--run-dir", str(run_dir)]
        + ["--set", "train.micro_batch_size=8"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    wait_for(lambda: any(e["type"] == "metrics" and e["step"] >= 3 for e in events_of(run_dir)), timeout=120)
    result = CliRunner().invoke(app, ["stop", str(run_dir)])
    assert result.exit_code == 0, result.output
    wait_for(lambda: read_status(run_dir).get("state") == "stopped", timeout=60)
    deadline = time.monotonic() + 30
    while read_status(run_dir).get("alive") and time.monotonic() < deadline:
        time.sleep(0.2)
    config_path, one_cfg = prepare_config(str(config), ["train.micro_batch_size=16"])
    one_dir = new_run_dir(one_cfg, config_path, tmp_path / "one")  # the reference: one process, in this one
    assert train_in_process(one_dir) == 0, (one_dir / "logs" / "engine.log").read_text()

    events = events_of(run_dir)
    assert [e["seq"] for e in events] == list(range(len(events)))  # rank 0 alone writes events
    last = events[-1]
    assert last["type"] == "status" and last["state"] == "stopped" and last["reason"] == "stop command"
    stopped_at = last["step"]
    assert 3 < stopped_at < max_steps
    hellos = [e for e in events if e["type"] == "hello"]
    assert len(hellos) == 1 and hellos[0]["world_size"] == 2
    assert (
        hellos[0]["tokens_per_step"] == next(e for e in events_of(one_dir) if e["type"] == "hello")["tokens_per_step"]
    )
    loss_one = {e["step"]: e["loss"] for e in events_of(one_dir) if e["type"] == "metrics"}
    loss_two = {e["step"]: e["loss"] for e in events if e["type"] == "metrics"}
    assert sorted(loss_two) == list(range(1, stopped_at + 1))
    for step in loss_two:
        assert loss_two[step] == pytest.approx(loss_one[step], abs=1e-4), step

    saved = [e for e in events if e["type"] == "checkpoint" and e["action"] == "saved"]
    assert len(saved) == 1 and saved[0]["step"] == stopped_at
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.is_dir())
    assert checkpoints == [f"checkpoint-{stopped_at}"]  # one complete checkpoint, no leftover temporary
    ckpt = run_dir / saved[0]["path"]
    from engine.checkpoint import load_training_state, verify_checkpoint

    assert verify_checkpoint(ckpt) == []
    assert json.loads((ckpt / "manifest.json").read_text())["step"] == stopped_at
    from transformers import AutoModelForCausalLM

    names = {n for n, _ in AutoModelForCausalLM.from_pretrained(ckpt).named_parameters()}
    assert set(load_training_state(ckpt)["optimizer"]["state"]) == names  # full, by name, no "module." prefix
    log = (run_dir / "logs" / "engine.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]

    resumed = subprocess.run(
        [sys.executable, "-m", "cockpit", "run", str(config), "--headless", "--resume", str(ckpt)]
        + ["--set", f"train.max_steps={stopped_at + 2}", "--set", "train.micro_batch_size=8"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = [e for e in events_of(run_dir) if e["type"] == "metrics" and e["seq"] > events[-1]["seq"]]
    assert [e["step"] for e in after] == [stopped_at + 1, stopped_at + 2]
    assert all(e["loss"] < loss_two[1] for e in after)


def test_fsdp_is_accelerates_fsdp2_plugin_on_gpus_and_refused_on_cpus():
    from engine.config import DistributedConfig
    from engine.distributed import accelerator_plugins

    fsdp = DistributedConfig(strategy="fsdp", fsdp={"reshard_after_forward": False})
    plugin = accelerator_plugins(fsdp, processes=4, cuda=True)["fsdp_plugin"]
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is False
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"  # one unit per decoder layer
    assert accelerator_plugins(DistributedConfig(), processes=4, cuda=True) == {}  # ddp: Accelerate's default
    assert accelerator_plugins(fsdp, processes=1, cuda=False) == {}  # one process: nothing to shard
    with pytest.raises(ConfigError, match="distributed.strategy fsdp needs CUDA GPUs"):
        accelerator_plugins(fsdp, processes=2, cuda=False)


def test_cli_fsdp_on_cpu_processes_exits_2(tmp_path):
    from engine.nvml import gpu_count

    if gpu_count():
        pytest.skip("this machine has GPUs")
    result = CliRunner().invoke(
        app,
        [
            "run",
            "demo",
            "--detach",
            "--nproc",
            "2",
            "--run-dir",
            str(tmp_path / "r"),
            "--set",
            "distributed.strategy=fsdp",
        ],
    )
    assert result.exit_code == 2 and "distributed.strategy fsdp needs CUDA GPUs" in result.output
    assert not (tmp_path / "r").exists()  # refused before anything was made
