"""FastV: top-`keep` visual tokens by action-query attention at layer K-1, positions preserved."""

import pytest
import torch
from method_helpers import (
    model_inputs,
    scores_from_visual,
    toy_layout,
    toy_spec,
    toy_stream,
    write_specprune_run,
)

from bench.errors import UserError
from pruning.fastv import FastV
from pruning.forward import pruned_forward


def _fastv(layout, **kw):
    m = FastV(alpha=0.8, **kw)
    m.setup(toy_spec(layout))
    return m


def test_scales_layer_and_keep_and_asks_action_rows_at_k_minus_1():
    lay = toy_layout()
    m = _fastv(lay, layer=8, keep=192)  # 8 of 32 -> layer 2 of 8; 192 per 256 -> 3 per 4
    assert m.scaled() == {"layer": 2, "keep": 3}
    assert [m.score_request(li) for li in range(8)] == [None, "action"] + [None] * 6


def test_keeps_top_tokens_of_the_attention_row_in_position_order():
    lay = toy_layout()  # visual positions 1..8
    m = _fastv(lay, layer=8, keep=192)
    stream = toy_stream(lay)
    rows = lay.indices("action").tolist()
    # mean scores per visual key: positions 3, 8, 6 are the top three
    sc = scores_from_visual(lay, rows, [0.01, 0.02, 0.30, 0.05, 0.03, 0.20, 0.04, 0.25])
    m.after_layer(1, stream, sc)
    assert stream.visual_orig_idx().tolist() == [3, 6, 8]
    assert stream.pos.tolist() == [0, 3, 6, 8, 9, 10, 11, 12]  # original positions kept
    m.after_layer(2, stream, None)  # later layers leave it alone
    assert stream.n_visual() == 3


def test_keep_matches_specprune_mean(tmp_path):
    lay = toy_layout()  # 8 visual tokens
    # SpecPrune mean 5.0 tokens/layer over 8 layers (weighted: (4.5*1 + 5.5*1) / 2)
    write_specprune_run(tmp_path, "m", "s", [4.5, 5.5], 8, 8)
    m = _fastv(lay, layer=8, keep="match_specprune", match_model="m", match_suite="s",
               match_root=str(tmp_path))
    # K=2 layers at 8 tokens + 6 at k: (2*8 + 6k)/8 = 5 -> k = 4
    assert m.keep_n == 4
    assert m.scaled()["matched_mean_visual"] == pytest.approx(5.0)


def test_keep_match_without_run_names_the_command(tmp_path):
    with pytest.raises(UserError, match="python -m bench.run model=m suite=s method=specprune"):
        FastV(keep="match_specprune", match_model="m", match_suite="s", match_root=str(tmp_path))


def test_through_pruned_forward(small_model):
    _, embeds, layout = model_inputs(small_model)
    m = FastV(keep=128)  # 4-layer model: K = round(2*4/32) = 1 -> at least 1; 128/256*16 = 8
    m.setup(small_model.model_spec(layout))
    with torch.inference_mode():
        res = pruned_forward(small_model.decoder(), embeds, layout, m)
    assert res.visual_per_layer == [32, 8, 8, 8]
    assert res.hidden.shape == (1, 8, 64)
    assert [s.score_rows for s in res.shapes] == [8, 0, 0, 0]
    assert len(res.extra["final_visual_idx"]) == 8
