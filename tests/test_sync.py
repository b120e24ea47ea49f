"""engine.sync through `cockpit ckpt sync` from an S3-compatible server on loopback: only complete
checkpoints come (a ``.tmp-`` directory and one without its manifest stay behind), the run's files
come along and the events grow by what was appended, a checkpoint replaced at the source is pulled
again, and one pruned at the source before it was read is skipped."""

from __future__ import annotations

import json
import os
import uuid

from typer.testing import CliRunner

from cockpit.cli import app
from engine.checkpoint_index import MANIFEST, write_manifest
from engine.rundir import RunPaths
from engine.sync import pull_checkpoint
from engine.transfer import open_url


def make_checkpoint(ckpt, step: int, manifest: bool = True) -> None:
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(os.urandom(5000))
    (ckpt / "config.json").write_text(json.dumps({"step": step}))
    if manifest:
        write_manifest(ckpt, step)


def test_sync_from_s3_pulls_only_complete_checkpoints(tmp_path, s3_server):
    run = tmp_path / "src" / "run"
    for step in (2, 4):
        make_checkpoint(run / "checkpoints" / f"checkpoint-{step}", step)
    make_checkpoint(run / "checkpoints" / ".tmp-checkpoint-6", 6)  # being written (its manifest already in)
    make_checkpoint(run / "checkpoints" / "checkpoint-8", 8, manifest=False)  # half-copied by hand
    (run / "run.yaml").write_text("name: run\n")
    (run / "events.jsonl").write_text('{"seq": 0}\n')
    bucket = f"sync-{uuid.uuid4().hex[:10]}"
    fs, _ = open_url(f"s3://{bucket}")
    fs.mkdir(bucket)
    fs.put(str(run), f"{bucket}/runs/run", recursive=True)
    url, dest = f"s3://{bucket}/runs/run", tmp_path / "here"
    runner = CliRunner()

    first = runner.invoke(app, ["ckpt", "sync", url, str(dest)])
    assert first.exit_code == 0, first.output
    paths = RunPaths(dest)
    assert sorted(p.name for p in paths.checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-4", "latest"]
    assert paths.latest_name() == "checkpoint-4"
    assert "sync: 2 checkpoint(s) pulled, 0 already here; 4 file(s) sent" in first.output
    assert paths.run_yaml.read_text() == "name: run\n"

    # the run goes on at the source: events appended, checkpoint-4 saved again with other contents
    with fs.open(f"{bucket}/runs/run/events.jsonl", "wb") as f:
        f.write(b'{"seq": 0}\n{"seq": 1}\n')
    (run / "checkpoints" / "checkpoint-4" / "config.json").write_text('{"step": 4, "again": true}')
    write_manifest(run / "checkpoints" / "checkpoint-4", 4)
    for name in ("config.json", MANIFEST):
        fs.put_file(
            str(run / "checkpoints" / "checkpoint-4" / name), f"{bucket}/runs/run/checkpoints/checkpoint-4/{name}"
        )
    second = runner.invoke(app, ["ckpt", "sync", url, str(dest)])
    assert second.exit_code == 0, second.output
    assert "checkpoint-2: already here" in second.output
    assert "checkpoint-4: resumed, verified: 1 file(s) sent" in second.output
    assert (paths.checkpoints / "checkpoint-4" / MANIFEST).read_bytes() == (
        run / "checkpoints" / "checkpoint-4" / MANIFEST
    ).read_bytes()
    assert paths.events.read_text() == '{"seq": 0}\n{"seq": 1}\n'

    src_fs, root = open_url(url)
    gone = pull_checkpoint(src_fs, root, dest, 99)
    assert gone.state == "vanished" and not (paths.checkpoints / "checkpoint-99").exists()
