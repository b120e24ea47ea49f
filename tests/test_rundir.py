"""The names of the run directory (DESIGN.md, "Run directory"): RunPaths spells each one, and the
checkpoint directory names parse back to their step. Literal names here on purpose: they are the contract."""

from pathlib import Path

from engine.rundir import (
    RunPaths,
    checkpoint_name,
    checkpoint_step,
    latest_checkpoint,
    replaced_checkpoint_name,
    temporary_checkpoint_name,
)


def test_run_paths_spell_the_layout_of_the_design():
    paths = RunPaths(Path("/runs/demo-1"))
    assert {
        name: str(getattr(paths, name))
        for name in (
            "run_yaml",
            "events",
            "socket",
            "status",
            "lock",
            "checkpoints",
            "latest",
            "logs",
            "engine_log",
            "tensorboard",
        )
    } == {
        "run_yaml": "/runs/demo-1/run.yaml",
        "events": "/runs/demo-1/events.jsonl",
        "socket": "/runs/demo-1/engine.sock",
        "status": "/runs/demo-1/status.json",
        "lock": "/runs/demo-1/engine.lock",
        "checkpoints": "/runs/demo-1/checkpoints",
        "latest": "/runs/demo-1/checkpoints/latest",
        "logs": "/runs/demo-1/logs",
        "engine_log": "/runs/demo-1/logs/engine.log",
        "tensorboard": "/runs/demo-1/tensorboard",
    }
    assert paths.run_id == "demo-1"
    assert paths.checkpoint_dir(300) == Path("/runs/demo-1/checkpoints/checkpoint-300")
    assert paths.checkpoint_rel(300) == "checkpoints/checkpoint-300"  # as events name it
    assert paths.relative(paths.latest) == "checkpoints/latest"


def test_checkpoint_names_parse_back_to_their_step_and_nothing_else_does():
    assert checkpoint_name(42) == "checkpoint-42" and checkpoint_step("checkpoint-42") == 42
    assert temporary_checkpoint_name(42) == ".tmp-checkpoint-42"
    assert replaced_checkpoint_name(42, 7) == ".old-checkpoint-42-7"
    for other in ("latest", ".tmp-checkpoint-42", ".old-checkpoint-42-7", "checkpoint-", "checkpoint-4x", "ckpt-4"):
        assert checkpoint_step(other) is None, other


def test_latest_names_the_newest_complete_checkpoint(tmp_path):
    paths = RunPaths(tmp_path)
    assert paths.latest_name() is None and latest_checkpoint(tmp_path) is None  # no checkpoint yet
    paths.checkpoint_dir(5).mkdir(parents=True)
    paths.latest.write_text("checkpoint-5\n")
    assert paths.latest_name() == "checkpoint-5" and latest_checkpoint(tmp_path) == paths.checkpoint_dir(5)
    paths.latest.write_text("checkpoint-9\n")  # names a directory that is not there
    assert latest_checkpoint(tmp_path) is None
    paths.latest.write_text("")
    assert paths.latest_name() == "" and latest_checkpoint(tmp_path) is None


def test_a_run_whose_engine_holds_the_lock_but_wrote_no_status_yet_is_starting(tmp_path):
    from engine.rundir import RunLock, read_status

    assert read_status(tmp_path) == {"state": "unknown", "alive": False}  # no engine, no status
    lock = RunLock(tmp_path)
    try:
        assert read_status(tmp_path) == {"state": "starting", "alive": True}
    finally:
        lock.release()
    assert read_status(tmp_path) == {"state": "unknown", "alive": False}
