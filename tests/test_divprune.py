"""DivPrune: greedy max-min order on hand-made vectors; per-view selection; keep matching."""

import math

import torch
from method_helpers import model_inputs, toy_layout, toy_spec, toy_stream, write_specprune_run

from pruning.common import cosine_distance, greedy_maxmin
from pruning.divprune import DivPrune
from pruning.forward import pruned_forward


def _unit(degrees):
    return torch.tensor([[math.cos(math.radians(d)), math.sin(math.radians(d))]
                         for d in degrees])


def test_greedy_maxmin_order_by_hand():
    # A 0deg, B 10deg, C 100deg, D 180deg, E 190deg (cosine distance grows with the angle).
    # Nearest-neighbour angles: A 10, B 10, C 80, D 10, E 10 -> C first.
    # min angle to {C}: A 100, B 90, D 80, E 90 -> A; to {C, A}: B 10, D 80, E 90 -> E;
    # to {C, A, E}: B 10, D 10 -> tie, lowest index B; then D.
    order = greedy_maxmin(cosine_distance(_unit([0, 10, 100, 180, 190])), 5)
    assert order.tolist() == [2, 0, 4, 1, 3]


def _embeds(layout, degrees):
    e = torch.zeros(1, layout.n_tokens, 2)
    e[0, layout.indices("visual")] = _unit(degrees)
    e[0, ~torch.isin(torch.arange(layout.n_tokens), layout.indices("visual"))] = 1.0
    return e


def test_per_view_selection_vs_global():
    lay = toy_layout()  # view a: positions 1-4, view b: 5-8
    degrees = [0, 5, 60, 180, 0, 20, 90, 170]
    e = _embeds(lay, degrees)
    # keep 128 per 256 -> 2 in total here; per view 1 each: the token whose nearest neighbour
    # in its own view is farthest. a: nn angles 5, 5, 55, 120 -> 180deg (pos 4);
    # b: 20, 20, 70, 80 -> 170deg (pos 8).
    m = DivPrune(keep=128, per_view=True)
    m.setup(toy_spec(lay, hidden=2))
    stream = toy_stream(lay, embeds=e)
    m.before_llm(None, stream)
    assert stream.visual_orig_idx().tolist() == [4, 8]
    assert stream.pos.tolist() == [0, 4, 8, 9, 10, 11, 12]
    # over both views at once: nn angles 0,5,30,10,0,15,30,10 -> 60deg (pos 3, lowest index of
    # the tie), then the farthest from it: 180deg (pos 4)
    g = DivPrune(keep=128, per_view=False)
    g.setup(toy_spec(lay, hidden=2))
    assert g.select(e).tolist() == [3, 4]


def test_keep_matches_specprune_mean(tmp_path):
    lay = toy_layout()
    write_specprune_run(tmp_path, "m", "s", [3.0, 6.0], 8, 8, ns=[1, 2])  # (3 + 12) / 3 = 5
    m = DivPrune(keep="match_specprune", match_model="m", match_suite="s",
                 match_root=str(tmp_path))
    m.setup(toy_spec(lay))
    assert m.scaled()["keep"] == 5 and m.scaled()["keep_per_view"] == [3, 2]


def test_through_pruned_forward(small_model):
    _, embeds, layout = model_inputs(small_model)
    m = DivPrune(keep=128)  # 128 per 256 -> 8 of 2 x 16, 4 per view
    m.setup(small_model.model_spec(layout))
    with torch.inference_mode():
        res = pruned_forward(small_model.decoder(), embeds, layout, m)
    assert res.visual_per_layer == [8, 8, 8, 8]
    kept = torch.tensor(res.extra["final_visual_idx"])
    assert (layout.view_of()[kept] == 0).sum() == 4 and (layout.view_of()[kept] == 1).sum() == 4
    assert res.hidden.shape == (1, 8, 64)
