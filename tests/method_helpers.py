"""Small hand-made layouts, streams and score objects for the method tests."""

import json

import numpy as np
import torch

from pruning.base import AttentionScores, ModelSpec
from pruning.forward import TokenStream
from pruning.layout import TokenLayout


def toy_layout(n_view=4, n_text=2, n_action=2):
    """bos | view a (n_view) | view b (n_view) | instruction | action."""
    return TokenLayout.build([("bos", "other", 1), ("a", "visual", n_view),
                              ("b", "visual", n_view), ("instruction", "text", n_text),
                              ("action", "action", n_action)], patch_grid=(2, n_view // 2))


def toy_spec(layout, num_layers=8, hidden=4):
    return ModelSpec(num_layers, 2, hidden, True, layout, 2)


def toy_stream(layout, hidden=4, embeds=None):
    if embeds is None:
        embeds = torch.zeros(1, layout.n_tokens, hidden)
    return TokenStream(embeds, layout)


def scores_from_visual(layout, rows, vis_scores):
    """AttentionScores whose mean over heads/rows gives `vis_scores` on the visual keys (every
    key present); heads differ but average to the given values."""
    n = layout.n_tokens
    v = torch.tensor(vis_scores, dtype=torch.float32)
    probs = torch.zeros(2, len(rows), n)
    vis = layout.indices("visual")
    probs[0, :, vis] = v * 0.5
    probs[1, :, vis] = v * 1.5
    return AttentionScores(probs, torch.arange(n), torch.tensor(rows))


def write_specprune_run(root, model, suite, means, n_layers, visual_total, ns=None):
    d = root / model / suite / "specprune" / "alpha=0.8"
    d.mkdir(parents=True)
    ns = ns or [1] * len(means)
    with open(d / "episodes.jsonl", "w") as f:
        for m, n in zip(means, ns, strict=True):
            f.write(json.dumps({"status": "ok", "latency_ms": {"n": n},
                                "tokens": {"visual_total": visual_total, "visual_kept_mean": m,
                                           "kept_per_layer_mean": [m] * n_layers}}) + "\n")
        f.write(json.dumps({"status": "error", "tokens": {}}) + "\n")
    return d


def model_inputs(model, seed=0):
    rng = np.random.default_rng(seed)
    s = model.cfg.image_size
    images = {v: rng.integers(0, 255, (s, s, 3), dtype=np.uint8) for v in model.view_names}
    embeds, layout = model.encode(images, np.zeros(8, np.float32))
    return images, embeds, layout
