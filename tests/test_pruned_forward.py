"""The shared pruned forward: equal to the model's own forward, positions kept, scores exact."""

import numpy as np
import torch

from bench.metrics.flops import DecoderFlops, count_flops, llama_layer_flops_analytic
from pruning.base import PruningMethod
from pruning.forward import pruned_forward
from pruning.layout import TokenLayout


def _inputs(model, images):
    embeds, layout = model.encode(images, np.zeros(8, np.float32))
    return embeds, layout


def test_layout_segments_and_kinds(small_model):
    lay = small_model.layout()
    names = [s.name for s in lay.segments]
    assert names == ["bos", "agentview", "robot0_eye_in_hand", "proprio", "instruction", "action"]
    assert lay["agentview"].length == 16 and lay.n_visual == 32
    assert lay["instruction"].length == len("put the black bowl on the plate".split())
    assert lay.indices("action").tolist() == list(range(lay.n_tokens - 8, lay.n_tokens))
    assert lay.view_of()[lay["robot0_eye_in_hand"].start].item() == 1


def test_layout_rejects_gaps():
    import pytest

    from pruning.layout import Segment

    with pytest.raises(ValueError):
        TokenLayout([Segment("a", "other", 0, 2), Segment("b", "visual", 3, 5)])


def test_nothing_pruned_equals_model_forward(small_model, images):
    embeds, layout = _inputs(small_model, images)
    with torch.inference_mode():
        res = pruned_forward(small_model.decoder(), embeds, layout, PruningMethod())
        ref = small_model.reference_forward(embeds)
    torch.testing.assert_close(res.hidden, ref, rtol=1e-5, atol=1e-5)
    assert res.visual_per_layer == [32] * 4
    # score requests switch those layers to the math path: the same outputs
    with torch.inference_mode():
        res = pruned_forward(small_model.decoder(), embeds, layout, ScoreEveryLayer())
    torch.testing.assert_close(res.hidden, ref, rtol=1e-5, atol=1e-5)


class ScoreEveryLayer(PruningMethod):
    def score_request(self, layer):
        return "text"


class KeepFixed(PruningMethod):
    """Keeps a fixed set of visual tokens from before the decoder."""

    def __init__(self, keep):
        self.keep = torch.tensor(keep)

    def before_llm(self, ctx, stream):
        stream.keep_visual(self.keep)


def test_pruned_tokens_keep_original_positions(small_model, images):
    """Dropping tokens before the LLM == the model's own forward on the kept subsequence with
    the kept tokens' original position ids."""
    embeds, layout = _inputs(small_model, images)
    keep = [1, 5, 9, 17, 30]
    with torch.inference_mode():
        res = pruned_forward(small_model.decoder(), embeds, layout, KeepFixed(keep))
        vis = set(layout.indices("visual").tolist())
        idx = torch.tensor([i for i in range(layout.n_tokens) if i not in vis or i in keep])
        out = small_model.model.llm(inputs_embeds=embeds[:, idx], position_ids=idx[None])
        ref = out.last_hidden_state[:, -8:]
    torch.testing.assert_close(res.hidden, ref, rtol=1e-5, atol=1e-5)
    assert res.visual_per_layer == [5] * 4
    assert res.extra["final_visual_idx"] == keep


class GrabScores(PruningMethod):
    def __init__(self, layer, which):
        self.layer, self.which, self.scores = layer, which, None

    def score_request(self, layer):
        return self.which if layer == self.layer else None

    def after_layer(self, layer, stream, scores):
        if scores is not None:
            self.scores = scores


def test_scores_equal_eager_attention(small_model, images):
    """Scores computed on request from q and k == the eager attention weights of that layer."""
    embeds, layout = _inputs(small_model, images)
    grab = GrabScores(2, "text")
    llm = small_model.model.llm
    with torch.inference_mode():
        pruned_forward(small_model.decoder(), embeds, layout, grab)
        llm.config._attn_implementation = "eager"
        try:
            n = embeds.shape[1]
            out = llm(inputs_embeds=embeds, position_ids=torch.arange(n)[None],
                      output_attentions=True)
        finally:
            llm.config._attn_implementation = "sdpa"
    eager = out.attentions[2][0]  # (H, n, n)
    rows = layout.indices("text")
    torch.testing.assert_close(grab.scores.probs, eager[:, rows], rtol=1e-4, atol=1e-6)
    vis_scores, vis_idx = grab.scores.visual_mean(layout)
    assert vis_idx.tolist() == layout.indices("visual").tolist()
    torch.testing.assert_close(vis_scores, eager[:, rows][:, :, vis_idx].mean((0, 1)))


class ReuseFromFull(PruningMethod):
    """Serves some visual tokens from keys/values recorded on a full forward of the same input."""

    def __init__(self, reuse_from, reuse_idx):
        self.record, self.kv = True, {}
        self.reuse_from, self.reuse_idx = reuse_from, torch.tensor(reuse_idx)

    def wants_kv(self, layer):
        return self.record

    def record_kv(self, layer, orig_idx, k, v):
        self.kv[layer] = (orig_idx.clone(), k.clone(), v.clone())

    def kv_reuse(self, layer, stream):
        return None if self.record or layer != self.reuse_from else self.reuse_idx

    def kv_lookup(self, layer, orig_idx):
        idx, k, v = self.kv[layer]
        where = torch.searchsorted(idx, orig_idx)
        return k[:, :, where], v[:, :, where]


def test_kv_reuse_of_exact_cache_equals_full_forward(small_model, images):
    embeds, layout = _inputs(small_model, images)
    m = ReuseFromFull(reuse_from=1, reuse_idx=[2, 3, 4, 20, 21])
    spec = small_model.decoder()
    with torch.inference_mode():
        full = pruned_forward(spec, embeds, layout, m)
        m.record = False
        reused = pruned_forward(spec, embeds, layout, m)
    torch.testing.assert_close(reused.hidden, full.hidden, rtol=1e-5, atol=1e-5)
    assert [s.n_cached for s in reused.shapes] == [0, 5, 5, 5]
    m.score_request = lambda layer: "text"  # math path with cached keys (explicit mask)
    with torch.inference_mode():
        scored = pruned_forward(spec, embeds, layout, m)
    torch.testing.assert_close(scored.hidden, full.hidden, rtol=1e-5, atol=1e-5)
    assert reused.visual_per_layer == [32] * 4


def test_flop_count_matches_analytic_and_counter(small_model, images):
    embeds, layout = _inputs(small_model, images)
    spec = small_model.decoder()
    c = small_model.model.llm.config
    grab = GrabScores(1, "text")
    with torch.inference_mode():
        counted, res = count_flops(pruned_forward, spec, embeds, layout, grab)
    dec, meth = DecoderFlops(spec).count(res.shapes)
    n = layout.n_tokens
    rows = layout["instruction"].length
    per_layer = llama_layer_flops_analytic(n, n, c.hidden_size, c.intermediate_size,
                                           c.num_attention_heads, c.num_key_value_heads)
    assert dec == 4 * per_layer
    assert rows > 0 and meth == 0  # score rows are read off the layer's own softmax
    assert counted == dec + meth  # the whole forward under FlopCounterMode


def test_token_stream_rows_masks_and_inserted_tokens():
    """Kind masks and row caches follow every change of the stream, inserted tokens included."""
    from pruning.forward import TokenStream
    from pruning.layout import VISUAL

    lay = TokenLayout.build([("bos", "other", 1), ("v0", "visual", 4), ("v1", "visual", 4),
                             ("instruction", "text", 2), ("action", "action", 2)])
    s = TokenStream(torch.arange(13.0).view(1, 13, 1), lay)
    assert s.rows(VISUAL).tolist() == list(range(1, 9)) and s.n_visual() == 8
    s.keep_visual_rows(torch.tensor([2, 7]))  # original positions 2 and 7 stay
    assert s.orig_idx.tolist() == [0, 2, 7, 9, 10, 11, 12] and s.n_visual() == 2
    assert s.hidden.flatten().tolist() == [0.0, 2.0, 7.0, 9.0, 10.0, 11.0, 12.0]
    s.insert_after_visual(torch.full((1, 2, 1), -1.0), torch.tensor([7, 7]))
    assert s.n_inserted == 2 and s.n_visual() == 4
    assert s.rows("text").tolist() == [5, 6]
    s.drop(torch.tensor([False, True, False, True, False, False, False, False, False]))
    assert s.n_inserted == 1 and s.orig_idx.tolist() == [0, 7, -1, 9, 10, 11, 12]
    assert s.kind_mask(VISUAL).tolist() == [False, True, True, False, False, False, False]
    # text and action rows are read from the end of the stream (no search): same as the masks
    for kind in ("text", "action"):
        assert s.rows(kind).tolist() == torch.nonzero(s.kind_mask(kind)).flatten().tolist()
    assert s.tail_rows("text") == slice(3, 5) and s.tail_rows(VISUAL) is None
    mid = TokenLayout.build([("bos", "other", 1), ("instruction", "text", 2),
                             ("v0", "visual", 4), ("action", "action", 2)])
    s2 = TokenStream(torch.zeros(1, 9, 1), mid)
    s2.keep_visual_rows(torch.tensor([4]))  # text before the visual tokens: no tail shortcut
    assert s2.tail_rows("text") is None and s2.rows("text").tolist() == [1, 2]
    assert s2.rows("action").tolist() == [4, 5]
    import pytest

    with pytest.raises(ValueError):
        s.drop(torch.tensor([True, False, False, False, False, False, False]))


def test_cached_index_tensors_work_with_autograd_after_inference_mode(small_model, images):
    """The loop's cached helper tensors (row aranges, causal bias) are created as normal tensors
    even inside inference mode, so a later forward with autograd on can still use them."""
    embeds, layout = _inputs(small_model, images)
    spec = small_model.decoder()
    with torch.inference_mode():
        pruned_forward(spec, embeds, layout, ScoreEveryLayer())
    res = pruned_forward(spec, embeds.clone().requires_grad_(True), layout, ScoreEveryLayer())
    res.hidden.sum().backward()
