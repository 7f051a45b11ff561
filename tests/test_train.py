"""Training the embedded model: the data round-trips into batches, a few steps reduce the loss,
a killed run resumes, and the saved weights load and give the same actions."""

import json

import numpy as np
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
              f"log={log}", "run=test_" + tmp_path.name, "batch=8", "lr=2e-3", "warmup=5",
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
