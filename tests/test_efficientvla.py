"""EfficientVLA: skips exactly the calibrated layers; calibration; relevance + diversity."""

import json
import math

import torch
from method_helpers import model_inputs, toy_layout, toy_spec, toy_stream

from pruning.base import PruningMethod
from pruning.efficientvla import EfficientVLA, calibrate, save_calibration, skip_set
from pruning.forward import pruned_forward


def test_skip_set_is_the_least_important():
    assert skip_set([0.5, 0.1, 0.3, 0.05], 2) == {1, 3}
    assert skip_set([0.2, 0.1, 0.1, 0.3], 1) == {1}  # tie -> lower index


def test_skips_exactly_the_calibrated_layers(small_model, tmp_path):
    _, embeds, layout = model_inputs(small_model)
    spec = small_model.model_spec(layout)
    path = tmp_path / "tiny.json"
    save_calibration(path, spec, [0.5, 0.1, 0.3, 0.05], 3)
    m = EfficientVLA(skip_layers=16, calibration=str(path), k_final=256)  # 16/32 of 4 -> 2
    m.setup(spec)
    assert m.scaled()["skipped"] == [1, 3]
    with torch.inference_mode():
        res = pruned_forward(small_model.decoder(), embeds, layout, m)
    assert [s.skipped for s in res.shapes] == [False, True, False, True]
    # k_final 256 of two 256-token views -> 16 of 32; scored at layer 0 (K = 1)
    assert res.visual_per_layer == [32, 16, 16, 16]
    assert res.hidden.shape == (1, 8, 64)


def test_calibrate_finds_an_identity_layer(small_model):
    """A layer whose attention and MLP outputs are zero leaves x unchanged: importance 0."""
    layer = small_model.model.llm.layers[2]
    with torch.no_grad():
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    samples = [model_inputs(small_model, seed=s)[1:] for s in range(2)]
    imp = calibrate(small_model.decoder(), samples)
    assert len(imp) == 4 and abs(imp[2]) < 1e-6 and min(imp[0], imp[1], imp[3]) > 1e-4
    assert skip_set(imp, 1) == {2}


def test_online_calibration_then_cached_file(small_model, tmp_path):
    _, embeds, layout = model_inputs(small_model)
    spec = small_model.model_spec(layout)
    path = tmp_path / "cal" / "m.json"
    m = EfficientVLA(skip_layers=8, calibration=str(path), calib_queries=2, k_final=256)
    m.setup(spec)
    dec = small_model.decoder()
    with torch.inference_mode():
        runs = []
        for _ in range(3):
            runs.append(pruned_forward(dec, embeds, layout, m))
            m.observe(None, None)
    # the two calibration queries run in full, then the least important layer is skipped
    assert [sum(s.skipped for s in r.shapes) for r in runs] == [0, 0, 1]
    assert runs[0].visual_per_layer == [32] * 4
    data = json.loads(path.read_text())
    expect = calibrate(dec, [(embeds, layout)])
    assert data["n_queries"] == 2
    assert all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
               for a, b in zip(data["importance"], expect, strict=True))
    again = EfficientVLA(skip_layers=8, calibration=str(path), k_final=256)
    again.setup(spec)  # loads the file: skips from the first query
    assert not again.calibrating and again.scaled()["skipped"] == m.scaled()["skipped"]


def _unit(degrees):
    return torch.tensor([[math.cos(math.radians(d)), math.sin(math.radians(d))]
                         for d in degrees])


def test_relevance_then_diversity_by_hand(tmp_path):
    lay = toy_layout()  # visual positions 1..8
    spec = toy_spec(lay, num_layers=8, hidden=2)
    path = tmp_path / "c.json"
    save_calibration(path, spec, [1.0] * 8, 1)
    # k_final 256 -> 4 of 8; k_key 64 -> 1; remaining 3: round(.5 * 3) = 2 more by score, 1 diverse
    m = EfficientVLA(skip_layers=0, calibration=str(path), k_final=256, k_key=64)
    m.setup(spec)
    assert (m.key_n, m.rel_n, m.keep_n) == (1, 2, 4)
    hidden = torch.zeros(1, lay.n_tokens, 2)
    hidden[0, 1:9] = _unit([0, 0, 0, 10, 90, 180, 45, 170])
    stream = toy_stream(lay, embeds=hidden)
    s = torch.tensor([0.9, 0.8, 0.7, 0.1, 0.05, 0.02, 0.01, 0.03])
    kept = m.select(s, torch.arange(1, 9), stream)
    # by score: 1 (key), 2, 3; the farthest from {0deg}: 180deg (position 6)
    assert kept.tolist() == [1, 2, 3, 6]


def test_skipped_layers_change_nothing_but_the_skip(small_model, tmp_path):
    """With no token pruning and nothing skipped, the output equals the unpruned model."""
    _, embeds, layout = model_inputs(small_model)
    spec = small_model.model_spec(layout)
    path = tmp_path / "c.json"
    save_calibration(path, spec, [1.0] * 4, 1)
    m = EfficientVLA(skip_layers=0, calibration=str(path), k_final=512)
    m.setup(spec)
    with torch.inference_mode():
        a = pruned_forward(small_model.decoder(), embeds, layout, m)
        b = pruned_forward(small_model.decoder(), embeds, layout, PruningMethod())
    torch.testing.assert_close(a.hidden, b.hidden)
