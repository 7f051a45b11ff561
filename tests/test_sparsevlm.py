"""SparseVLM: text raters, scaled layers and schedule, recycled DPC-kNN centres."""

import torch
from method_helpers import model_inputs, toy_layout, toy_spec, toy_stream

from pruning.base import AttentionScores
from pruning.forward import pruned_forward
from pruning.sparsevlm import SparseVLM, dpc_knn, merge_clusters, text_raters


def test_text_raters_by_hand():
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # logits per visual row [3, 0, 0, 3] -> softmax [.476, .024, .024, .476], mean .25
    t = torch.tensor([[3.0, 0.0], [0.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    assert text_raters(v, t).tolist() == [True, False, False, True]
    # all equal: nobody above the mean -> every text token rates
    assert text_raters(v, torch.zeros(3, 2)).tolist() == [True, True, True]


def test_scaled_layers_and_schedule():
    m = SparseVLM()
    m.setup(toy_spec(toy_layout(n_view=100), num_layers=8))
    # layers 2, 6, 15 of 32 -> 1, 2, 4 of 8 (half-up); 300/200/110 of 576 -> of 200
    assert m.scaled() == {"layers": [1, 2, 4], "counts": [104, 69, 38]}
    assert [m.score_request(li) for li in range(8)] == [None, "text", "text", None, "text",
                                                         None, None, None]


def test_dpc_knn_two_clusters_by_hand():
    # k = 3: densities peak at 0.1 and 5.1 (the middle points); both get the max delta
    x = torch.tensor([[0.0], [0.1], [0.3], [5.0], [5.1], [5.3]])
    assign, centres = dpc_knn(x, 2, k=3)
    assert sorted(centres.tolist()) == [1, 4]
    assert assign[:3].unique().numel() == 1 and assign[3:].unique().numel() == 1
    merged = merge_clusters(x, assign, 2)
    torch.testing.assert_close(merged[assign[0], 0], torch.tensor(0.4 / 3))
    torch.testing.assert_close(merged[assign[3], 0], torch.tensor(15.4 / 3))


def test_prune_and_recycle_at_a_layer():
    lay = toy_layout(n_view=12, n_text=2)  # visual positions 1..24, text 25-26
    m = SparseVLM(layers=[0], schedule=[4], schedule_total=24)
    m.setup(toy_spec(lay, num_layers=4))
    hidden = torch.randn(1, lay.n_tokens, 4)
    stream = toy_stream(lay, embeds=hidden)
    m._raters = torch.tensor([26])  # only the second text token rates
    n = lay.n_tokens
    probs = torch.zeros(2, 2, n)
    vis = lay.indices("visual")
    score = torch.arange(24, dtype=torch.float32)  # position p scores p - 1
    probs[:, 1, vis] = score / 1000
    probs[:, 0, vis] = score.flip(0) / 1000  # the non-rater row ranks the other way round
    m.after_layer(0, stream, AttentionScores(probs, torch.arange(n), torch.tensor([25, 26])))
    # kept: the 4 best by the rater (positions 21-24); 20 pruned -> top int(0.3*20)=6 recycled
    # (positions 15-20) -> int(6/10)+1 = 1 centre = their mean, after the kept visual tokens
    assert stream.visual_orig_idx().tolist() == [21, 22, 23, 24]
    assert stream.orig_idx.tolist() == [0, 21, 22, 23, 24, -1, 25, 26, 27, 28]
    torch.testing.assert_close(stream.hidden[0, 5], hidden[0, 15:21].mean(0))
    assert stream.pos[5].item() == 24  # the last visual position of the layout
    assert stream.order_preserved


def test_through_pruned_forward(small_model):
    _, embeds, layout = model_inputs(small_model)
    m = SparseVLM()  # 4 layers: prune after 0, 1, 2 to 17, 11, 6 of 32 (+1 centre each)
    m.setup(small_model.model_spec(layout))
    with torch.inference_mode():
        res = pruned_forward(small_model.decoder(), embeds, layout, m)
    assert m.scaled() == {"layers": [0, 1, 2], "counts": [17, 11, 6]}
    assert res.visual_per_layer == [32, 18, 12, 7]
    assert res.hidden.shape == (1, 8, 64) and torch.isfinite(res.hidden).all()
    assert not any(s.masked for s in res.shapes)  # the fused causal kernel throughout
