"""`cockpit check`: each check of the environment, machine, config and tokenizer sections with a
good and a broken case naming the problem; the report, its verdict and exit codes; `--json`
against its schema; the demo config ready before and after the demo made its data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cockpit.checks import run_checks
from cockpit.checks.base import CheckContext
from cockpit.checks.config import check_config, load_run_config
from cockpit.checks.environment import PACKAGES, check_environment, torch_build
from cockpit.checks.machine import check_machine
from cockpit.checks.tokenizer import check_tokenizer
from cockpit.cli import app
from engine.config import RunConfig, set_dotted

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "configs" / "demo.yaml"
runner = CliRunner()


def by_id(results, id_):
    found = [r for r in results if r.id == id_]
    assert len(found) == 1, [r.id for r in results]
    return found[0]


def config(tmp_path: Path, **items) -> RunConfig:
    data: dict = {}
    for key, value in {"runs_dir": str(tmp_path / "runs"), **items}.items():
        set_dotted(data, key.replace("__", "."), value)
    return RunConfig.model_validate(data).resolved(tmp_path)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """What the demo makes at launch: its corpus and a tokenizer trained on it."""
    from engine.data.demo import generate_demo_corpus
    from engine.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("demo-data")
    corpus = generate_demo_corpus(root / "data" / "demo" / "corpus.txt", samples=2000, seed=1234)
    train_tokenizer(corpus, root / "data" / "demo" / "tokenizer", vocab_size=400)
    return root


# --- environment ------------------------------------------------------------------------------


def test_environment_reports_versions_and_the_torch_build_without_importing_torch():
    import sys

    had_torch = "torch" in sys.modules
    results = check_environment(CheckContext(None))
    assert by_id(results, "environment.python").status == "ok"
    packages = by_id(results, "environment.packages")
    assert packages.status in ("ok", "warn") and packages.data["versions"]["torch"].startswith("2.")
    build = torch_build()
    assert build["version"] == packages.data["versions"]["torch"]
    assert f"torch {build['version']}" in by_id(results, "environment.torch").detail
    gpus = by_id(results, "environment.gpus")
    assert gpus.status == ("skip" if not gpus.data["gpus"] else "ok")
    assert ("torch" in sys.modules) == had_torch


def test_a_missing_required_package_fails_naming_it(monkeypatch):
    monkeypatch.setitem(PACKAGES, "no-such-package-cockpit", ("no_such_package_cockpit", True))
    packages = by_id(check_environment(CheckContext(None)), "environment.packages")
    assert packages.status == "fail" and packages.blocking and "missing: no-such-package-cockpit" in packages.detail


# --- machine ----------------------------------------------------------------------------------


def test_output_directory_that_cannot_be_made_fails_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cfg = config(tmp_path, runs_dir=str(blocker / "runs"))
    output = by_id(check_machine(CheckContext(None, cfg)), "machine.output")
    assert output.status == "fail" and output.blocking
    assert f"{blocker / 'runs'}: not writable: {blocker} is not a directory" in output.detail


def test_writable_output_directory_will_be_created(tmp_path):
    output = by_id(check_machine(CheckContext(None, config(tmp_path))), "machine.output")
    assert output.status == "ok" and "(will be created)" in output.detail
    assert not (tmp_path / "runs").exists()  # checking makes nothing


@pytest.mark.parametrize("free, status", [(10 << 30, "ok"), (100 << 20, "fail")])
def test_disk_footprint_against_free_disk(tmp_path, free, status):
    cfg = config(
        tmp_path, train__max_steps=1000, train__save_every=100, train__save_total_limit=3, train__warmup_steps=10
    )
    ctx = CheckContext(None, cfg, disk_free_bytes=free)
    ctx.model = {"total_params": 10_000_000}
    disk = by_id(check_machine(ctx), "machine.disk")
    assert disk.status == status
    assert disk.data["checkpoints_kept"] == 4  # save_total_limit 3, plus the best beyond it
    assert disk.data["needed"] == 4 * (10_000_000 * 12 + (8 << 20))
    if status == "fail":
        assert "not enough disk" in disk.detail and disk.blocking and "save_total_limit" in disk.fix


# --- config -----------------------------------------------------------------------------------


def test_unknown_key_suggests_the_right_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_step: 10\n")
    _, cfg, loaded = load_run_config(str(path))
    assert cfg is None and loaded.status == "fail" and loaded.blocking
    assert "unknown key 'train.max_step' (did you mean 'train.max_steps'?)" in loaded.detail


def test_sequence_length_the_model_cannot_take(tmp_path):
    cfg = config(tmp_path, train__seq_len=1024)  # tiny has 512 positions
    seq = by_id(check_config(CheckContext(None, cfg)), "config.seq_len")
    assert (
        seq.status == "fail"
        and "train.seq_len 1024 is longer than the model's 512 positions (preset tiny)" in seq.detail
    )
    cfg = config(tmp_path, train__seq_len=1024, model={"max_position_embeddings": 2048})
    assert by_id(check_config(CheckContext(None, cfg)), "config.seq_len").status == "ok"


def test_missing_data_fails_but_demo_data_will_be_created(tmp_path):
    cfg = config(tmp_path, data__source="text", data__path="nowhere.txt")
    paths = by_id(check_config(CheckContext(None, cfg)), "config.paths")
    assert paths.status == "fail" and f"data.path: {tmp_path / 'nowhere.txt'} does not exist" in paths.detail
    assert "tokenizer.path" not in paths.detail  # a text run trains its tokenizer at launch
    demo = by_id(check_config(CheckContext(None, config(tmp_path))), "config.paths")
    assert demo.status == "ok" and demo.detail.startswith("will be created at launch")


def test_global_batch_and_intervals(tmp_path):
    cfg = config(tmp_path, train__micro_batch_size=4, train__grad_accum_steps=8, train__seq_len=256)
    batch = by_id(check_config(CheckContext(None, cfg, nproc=2)), "config.batch")
    assert batch.data == {"sequences": 64, "tokens": 64 * 256}
    assert "micro_batch_size 4 x grad_accum_steps 8 x 2 process(es)" in batch.detail
    cfg = config(tmp_path, train__eval_every=50, data__val_fraction=0.0)
    intervals = by_id(check_config(CheckContext(None, cfg)), "config.intervals")
    assert intervals.status == "fail" and "nothing held out" in intervals.detail


# --- tokenizer --------------------------------------------------------------------------------


def test_missing_tokenizer_fails_for_shards_and_will_be_trained_for_text(tmp_path):
    cfg = config(tmp_path, data__source="shards", data__path=str(tmp_path), tokenizer__path="no-tokenizer")
    load = by_id(check_tokenizer(CheckContext(None, cfg)), "tokenizer.load")
    assert load.status == "fail" and load.blocking
    assert f"tokenizer.path: {tmp_path / 'no-tokenizer'} not found" in load.detail
    text = config(tmp_path, data__source="text", tokenizer__path="no-tokenizer")
    load = by_id(check_tokenizer(CheckContext(None, text)), "tokenizer.load")
    assert load.status == "ok" and "will be created at launch" in load.detail


def test_tokenizer_loads_round_trips_and_fits_the_embedding(tmp_path, demo_data):
    tok = demo_data / "data" / "demo" / "tokenizer"
    results = check_tokenizer(CheckContext(None, config(tmp_path, tokenizer__path=str(tok))))
    assert all(r.status == "ok" for r in results), [(r.id, r.detail) for r in results]
    size = by_id(results, "tokenizer.load").data["vocab_size"]
    assert by_id(results, "tokenizer.special").data == {
        "eos": "<|endoftext|>",
        "bos": "<|endoftext|>",
        "pad": "<|endoftext|>",
    }
    small = config(tmp_path, tokenizer__path=str(tok), model={"vocab_size": size - 10})
    vocab = by_id(check_tokenizer(CheckContext(None, small)), "tokenizer.vocab")
    assert vocab.status == "fail" and vocab.blocking
    assert f"the tokenizer's {size:,} tokens do not fit the model's embedding of {size - 10:,}" in vocab.detail


def test_bare_tokenizer_json_and_one_without_end_of_text(tmp_path, demo_data):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(demo_data / "data" / "demo" / "tokenizer" / "tokenizer.json", bare)
    results = check_tokenizer(CheckContext(None, config(tmp_path, tokenizer__path=str(bare))))
    assert "(bare tokenizer.json)" in by_id(results, "tokenizer.load").detail
    assert by_id(results, "tokenizer.special").data["eos"] == "<|endoftext|>"  # as the engine guesses it

    from tokenizers import Tokenizer, models, pre_tokenizers

    plain = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    plain.pre_tokenizer = pre_tokenizers.Whitespace()
    (tmp_path / "plain").mkdir()
    plain.save(str(tmp_path / "plain" / "tokenizer.json"))
    results = check_tokenizer(CheckContext(None, config(tmp_path, tokenizer__path=str(tmp_path / "plain"))))
    special = by_id(results, "tokenizer.special")
    assert special.status == "fail" and "no end-of-text token" in special.detail
    assert by_id(results, "tokenizer.roundtrip").status == "warn"


# --- report and CLI ---------------------------------------------------------------------------


def test_a_crashing_check_is_reported_and_the_others_still_run(tmp_path):
    ctx = CheckContext(None, config(tmp_path))

    def check_broken(ctx):  # a check with a bug, reporting in the environment section
        return [ctx.no_such_fact]

    check_broken.__module__ = "cockpit.checks.environment"
    report = run_checks(ctx, checks=(check_environment, check_broken, check_config))
    crashed = by_id(report.results, "environment.crashed")
    assert crashed.status == "warn" and "AttributeError" in crashed.detail
    assert any(r.id == "config.seq_len" for r in report.results) and report.ready


def _schema():
    return json.loads((REPO / "cockpit" / "checks" / "schema.json").read_text())


def test_demo_config_is_ready_before_the_demo_made_its_data(tmp_path, monkeypatch):
    import jsonschema

    monkeypatch.chdir(tmp_path)  # a fresh clone: no data/, no runs/
    result = runner.invoke(app, ["check", str(DEMO), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    jsonschema.validate(report, _schema())
    assert report["ready"] is True and report["config"] == str(DEMO)
    details = {r["id"]: r for r in report["results"]}
    assert details["config.paths"]["detail"].startswith("will be created at launch")
    assert "will be created at launch" in details["tokenizer.load"]["detail"]
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_demo_config_is_ready_after_the_demo_made_its_data(demo_data, monkeypatch):
    import jsonschema

    monkeypatch.chdir(demo_data)
    (demo_data / "runs").mkdir(exist_ok=True)
    result = runner.invoke(app, ["check", str(DEMO), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    jsonschema.validate(report, _schema())
    details = {r["id"]: r for r in report["results"]}
    assert details["tokenizer.load"]["status"] == "ok" and "will be created" not in details["tokenizer.load"]["detail"]
    assert details["config.paths"]["detail"].endswith("exist")


def test_table_output_and_exit_codes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["check", str(DEMO)])
    assert result.exit_code == 0 and "READY to launch" in result.output and "Tokenizer" in result.output
    result = runner.invoke(app, ["check", str(DEMO), "--set", "train.seq_len=4096"])
    assert result.exit_code == 1, result.output
    assert "NOT READY" in result.output and "config.seq_len" in result.output
    assert "train.seq_len 4096 is longer than the model's 512 positions" in result.output
    result = runner.invoke(app, ["check", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "missing.yaml: config file not found" in result.output
    result = runner.invoke(app, ["check", "--json"])  # no config: environment and machine only
    assert result.exit_code == 0 and json.loads(result.output)["config"] is None


def test_every_result_id_and_section_fit_the_schema(tmp_path, demo_data, monkeypatch):
    import jsonschema

    monkeypatch.chdir(demo_data)
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        f"data:\n  source: shards\n  path: {tmp_path}/none\ntokenizer:\n  path: {tmp_path}/none\n"
        f"train:\n  seq_len: 4096\n  eval_every: 5\nruns_dir: {tmp_path}/f/runs\n"
    )
    (tmp_path / "f").write_text("")
    result = runner.invoke(app, ["check", str(broken), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    jsonschema.validate(report, _schema())
    failed = {r["id"] for r in report["results"] if r["status"] == "fail"}
    assert {"config.paths", "config.seq_len", "tokenizer.load", "machine.output"} <= failed
