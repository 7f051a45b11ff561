"""Training the embedded model: the data round-trips into batches, a few steps reduce the loss,
a killed run resumes, and the saved weights load and give the same actions."""

import json

import numpy as np
import pytest
import torch

from bench.data.demos import demo_path, write_demo

ARCH = ["arch.image_size=64", "arch.vit_dim=32", "arch.vit_layers=1", "arch.vit_heads=2",
        "arch.hidden=64", "arch.layers=2", "arch.heads=2", "arch.mlp=128"]


def _demos(root, n=4, steps=24):
    rng = np.random.default_rng(0)
    for i in range(n):
        t = np.arange(steps)
        actions = np.stack([np.sin(t / 5 + i), np.cos(t / 7), 0.1 * np.ones(steps),
                            np.zeros(steps), np.zeros(steps), 0.05 * np.sin(t / 3),
                            np.where(t > steps // 2, 1.0, -1.0)], 1).astype(np.float32)
        img_steps = np.arange(0, steps, 2)
        imgs = rng.integers(0, 255, (len(img_steps), 64, 64, 3), dtype=np.uint8)
        write_demo(demo_path(root, "libero_spatial", 0, 10 + i, 7), actions=actions,
                   proprio=rng.normal(size=(steps, 8)).astype(np.float32),
                   image_steps=img_steps, agentview=imgs, wrist=imgs[:, ::-1],
                   attrs={"suite": "libero_spatial", "task_id": 0, "init_state_idx": 10 + i,
                          "seed": 7, "instruction": "put the black bowl on the plate",
                          "camera_size": 64, "image_every": 2, "success": True,
                          "expert_version": "test"})


def test_train_reduces_loss_resumes_and_weights_load(tmp_path):
    from scripts.train_tiny_vla import main

    _demos(tmp_path / "demos")
    out, log = tmp_path / "w.safetensors", tmp_path / "log.jsonl"
    common = [f"demos={tmp_path / 'demos'}", "suites=[libero_spatial]", f"out={out}",
              f"log={log}", f"ckpt_root={tmp_path / 'ckpt'}", "run=test", "batch=8", "lr=2e-3", "warmup=5",
              "val_every=15", "val_batches=2", "ckpt_every=5", "val_init_mod=4", "bf16=false",
              "jitter=0", "crop_pad=0", *ARCH]
    main([*common, "steps=15"])
    main([*common, "steps=60"])  # resumes from the checkpoint at step 15
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["step"] for r in recs] == [15, 30, 45, 60]
    assert recs[-1]["train_l1"] < 0.8 * recs[0]["train_l1"]

    from bench.models.tiny_vla import TinyVLAAdapter, load_weights

    model, stats, extra = load_weights(out)
    assert extra["step"] == 60 and stats["num_demos"] == 4
    a = TinyVLAAdapter(weights=str(out))
    b = TinyVLAAdapter(weights=str(out))
    imgs = {v: np.full((64, 64, 3), 100, np.uint8) for v in a.view_names}
    for m in (a, b):
        m.reset("put the black bowl on the plate")
    with torch.inference_mode():
        ea, _ = a.encode(imgs, np.zeros(8, np.float32))
        eb, _ = b.encode(imgs, np.zeros(8, np.float32))
        ya = a.head(a.reference_forward(ea))
        yb = b.head(b.reference_forward(eb))
    torch.testing.assert_close(ya, yb)
    acts = a.to_env_actions(ya)
    assert acts.shape == (8, 7) and set(np.unique(acts[:, 6])) <= {-1.0, 1.0}


def test_warm_start_continues_from_weights_with_time_budget(tmp_path):
    """A new session continues the committed weights: same statistics (same suites), the step
    count chains, and a wall-clock budget stops the run with the weights exported."""
    from bench.models.tiny_vla import load_weights
    from scripts.train_tiny_vla import main

    _demos(tmp_path / "demos")
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    common = [f"demos={tmp_path / 'demos'}", "suites=[libero_spatial]", f"log={tmp_path / 'l'}",
              f"ckpt_root={tmp_path / 'ckpt'}", "batch=4", "warmup=2", "val_batches=1", "val_init_mod=4", "bf16=false", *ARCH]
    main([*common, f"out={first}", "run=a", "steps=6", "val_every=6"])
    model_a, stats_a, extra_a = load_weights(first)
    n_logged = len((tmp_path / "l").read_text().splitlines())
    main([*common, f"out={second}", "run=b", f"init={first}", "steps=1000",
          "val_every=1000", "max_minutes=0.002"])
    model_b, stats_b, extra_b = load_weights(second)
    # a warm start logs the starting weights' validation loss before its first step: the
    # same weights on the same held-out demos as run a's last validation
    first_b = json.loads((tmp_path / "l").read_text().splitlines()[n_logged])
    assert first_b["step"] == 0 and first_b["val_l1"] == pytest.approx(extra_a["val_l1"], rel=1e-6)
    assert stats_b == stats_a
    assert extra_b["init"]["path"] == str(first) and extra_b["init"]["step"] == 6
    assert 1 <= extra_b["step"] < 1000 and extra_b["total_steps"] == 6 + extra_b["step"]
    changed = [k for k, v in model_b.state_dict().items()
               if not torch.equal(v, model_a.state_dict()[k])]
    assert changed  # it trained on from the first model's weights


def test_demos_from_several_roots_train_together(tmp_path):
    """demos=[clean, noisy]: the statistics and the split cover the files of both roots."""
    from bench.models.tiny_vla import load_weights
    from scripts.train_tiny_vla import main

    _demos(tmp_path / "clean", n=4)
    _demos(tmp_path / "noisy", n=4)
    out = tmp_path / "w.safetensors"
    main([f"demos=[{tmp_path / 'clean'},{tmp_path / 'noisy'}]", "suites=[libero_spatial]",
          f"out={out}", f"log={tmp_path / 'l'}", f"ckpt_root={tmp_path / 'ckpt'}", "run=t",
          "batch=4", "warmup=1", "steps=2", "val_every=2", "val_batches=1", "val_init_mod=4",
          "bf16=false", *ARCH])
    _, stats, extra = load_weights(out)
    assert stats["num_demos"] == 8
    assert extra["train_demos"] == 6 and extra["val_demos"] == 2
