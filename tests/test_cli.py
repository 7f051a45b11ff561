"""`python -m bench.run`: bad inputs end in one line and exit code 2 with nothing written; a
good run on the fake suite writes a manifest and episodes and resumes."""

import json
import subprocess
import sys

import pytest

SMALL = ["+model.image_size=64", "+model.vit_dim=32", "+model.vit_layers=1", "+model.vit_heads=2", "+model.hidden=64",
         "+model.layers=4", "+model.mlp=128", "suite.camera_size=64"]


def _run(args, tmp_path):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "bench.run", "suite=fake", f"run_dir={out}",
                        "warmup=0", *args], capture_output=True, text=True, timeout=300)
    return p, out


@pytest.mark.parametrize("args, message", [
    (["method=fastvv"], "unknown method 'fastvv'"),
    (["suite=libero_spatail"], "did you mean 'libero_spatial'"),
    (["alpha=1.5"], "alpha must be in (0, 1]"),
    (["model.weights=/nonexistent/w.safetensors"], "weights file not found"),
    (["tasks=[0,9]"], "has tasks 0..2"),
    (["shard=2/2"], "need 0 <= i < n"),
    (["shard=half"], "shard must look like i/n"),
])
def test_bad_input_one_line_exit_2_nothing_written(args, message, tmp_path):
    p, out = _run(args, tmp_path)
    assert p.returncode == 2, p.stderr
    lines = [x for x in p.stderr.splitlines() if x.strip() and "WARNING" not in x]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    assert not out.exists()


def test_fake_run_writes_manifest_episodes_and_resumes(tmp_path):
    p, out = _run(SMALL + ["trials=1", "tasks=[0,1]"], tmp_path)
    assert p.returncode == 0, p.stderr
    man = json.loads((out / "manifest.json").read_text())
    assert man["method"] == "none" and man["suite"] == "fake" and man["tag"] == "default"
    assert man["packages"]["torch"] and man["git_commit"] and man["machine"]["cores"]
    eps = (out / "episodes.jsonl").read_text().splitlines()
    assert len(eps) == 2
    assert "SR % [95% CI]" in p.stdout
    p2, _ = _run(SMALL + ["trials=2", "tasks=[0,1]"], tmp_path)
    assert p2.returncode == 0, p2.stderr
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 4
    assert "2 run now" in p2.stdout


def test_two_shards_in_parallel_share_one_run(tmp_path):
    """`shard=i/n` processes on one run folder split the tasks and append to one episodes file."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "bench.run", "suite=fake", f"run_dir={out}", "warmup=0",
           "trials=2", *SMALL]
    procs = [subprocess.Popen([*cmd, f"shard={i}/2"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    eps = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted((e["task_id"], e["init_state_idx"]) for e in eps) == [
        (t, i) for t in range(3) for i in range(2)]
