"""VLA-Cache: static detection vs the cached frame, relevant tokens recomputed, entropy
schedule, reuse of exactly the static non-relevant tokens, real KV reuse in the loop."""

import torch
from method_helpers import model_inputs, toy_layout, toy_spec, toy_stream

from pruning.base import PruningMethod, QueryContext
from pruning.forward import pruned_forward
from pruning.vla_cache import VLACache, reuse_schedule


def test_reuse_schedule_by_hand():
    # entropy [3, 1, 2, 0] -> minmax [1, 1/3, 2/3, 0] -> reuse [0, 2/3, 1/3, 1]
    # damped rises: 0 + .55*2/3 = .3667; 1/3 stays; 1/3 + .55*(1 - 1/3) = .7
    out = reuse_schedule(torch.tensor([3.0, 1.0, 2.0, 0.0]), 0.55)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.55 * 2 / 3, 1 / 3, 0.7]))


def _toy_method(**kw):
    lay = toy_layout()  # views a: 1-4, b: 5-8
    m = VLACache(max_static=kw.pop("max_static", 256), relevant_top=64, **kw)
    m.setup(toy_spec(lay))
    return m, lay


def _prime(m, lay, ref, relevance, entropy):
    m._ref = {k: v.clone() for k, v in ref.items()}
    m._relevance = torch.tensor(relevance)
    m._entropy = dict(enumerate(entropy))
    m._kv = {li: (torch.zeros(1, 2, lay.n_tokens, 2), torch.zeros(1, 2, lay.n_tokens, 2))
             for li in range(8)}


def _served(m, lay):
    stream = toy_stream(lay)
    got = [m.kv_reuse(li, stream) for li in range(8)]
    return {li: g.tolist() for li, g in enumerate(got) if g is not None}


def test_reuses_exactly_the_static_non_relevant_tokens():
    m, lay = _toy_method()
    assert m.scaled() == {"max_static": 4, "relevant_top": 1, "relevance_layer": 4,
                          "reuse_layers": [1, 2, 3]}
    ref = {"a": torch.rand(4, 12) + 0.1, "b": torch.rand(4, 12) + 0.1}
    cur = {k: v.clone() for k, v in ref.items()}
    cur["a"][3] = 1.0 - ref["a"][3]  # position 4 changed
    cur["b"][0] = 1.0 - ref["b"][0]  # position 5 changed
    cur["b"][1] = ref["b"][1] * 3.0  # position 6: scaled pixels, cosine 1 -> static
    # relevant (top 1 per view by the previous score): position 2 in a, 8 in b
    _prime(m, lay, ref, [0.1, 0.9, 0.2, 0.3, 0.1, 0.2, 0.3, 0.8],
           entropy=[1, 1, 1, 1, 2, 2, 3])  # reuse fraction 1 from layer 0 to 3
    m.before_llm(QueryContext(lay, 0, 1, cur), None)
    served = _served(m, lay)
    assert list(served) == [1]  # everything reusable served from the first reuse layer
    assert sorted(served[1]) == [1, 3, 6, 7]
    assert m.query_stats() == {"static": 6, "reused": 4}


def test_threshold_cap_order_and_fraction():
    ref = {"a": torch.ones(4, 12), "b": torch.rand(4, 12) + 0.1}
    wiggle = torch.tensor([1.0, -1.0] * 6)
    cur = {"a": torch.ones(4, 12), "b": 1.0 - ref["b"]}  # view b changed entirely
    cur["a"][0] = 1.0 + 0.05 * wiggle  # cosine 12 / sqrt(12 * 12.03) = .99875: static
    cur["a"][1] = 1.0 + 0.10 * wiggle  # cosine 12 / sqrt(12 * 12.12) = .99504: not static
    relevance = [0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0]  # position 3 relevant in view a
    # entropy -> reuse [0, 2/3, 1/3, 1, 1, 1, 1] -> damped [0, .367, .333, .7, ...]
    entropy = [3, 1, 2, 0, 0, 0, 0]
    # no cap: static 3, 4 (cosine 1), then 1; minus relevant 3 -> [4, 1], most similar first
    m, lay = _toy_method()
    _prime(m, lay, ref, relevance, entropy)
    m.before_llm(QueryContext(lay, 0, 1, cur), None)
    assert m._plan[0].tolist() == [4, 1] and m._plan[1].tolist() == []
    # layer 1: max(1, int(.367 * 2)) = 1 -> [4]; layers 2, 3: int(.33*2), int(.7*2) <= 1
    assert _served(m, lay) == {1: [4]}
    # cap 2 per view: the two most similar (3, 4) -> minus relevant 3 -> [4]
    m, lay = _toy_method(max_static=128)
    _prime(m, lay, ref, relevance, entropy)
    m.before_llm(QueryContext(lay, 0, 1, cur), None)
    assert m._plan[0].tolist() == [4]


def _ctx(model, images, embeds, layout, q):
    return QueryContext(layout, q, q, model.patches(images), input_embeds=embeds)


def _run(model, method, images, embeds, layout, q):
    ctx = _ctx(model, images, embeds, layout, q)
    with torch.inference_mode():
        res = pruned_forward(model.decoder(), embeds, layout, method, ctx)
        method.observe(ctx, None)
    return res


def test_nothing_static_equals_full_recompute(small_model):
    img1, e1, layout = model_inputs(small_model, seed=1)
    img2, e2, _ = model_inputs(small_model, seed=2)  # a different random frame: nothing static
    m = VLACache()
    m.setup(small_model.model_spec(layout))
    m.reset()
    first = _run(small_model, m, img1, e1, layout, 0)
    assert m.query_stats()["reused"] == 0 and all(s.n_cached == 0 for s in first.shapes)
    second = _run(small_model, m, img2, e2, layout, 1)
    assert m.query_stats() == {"static": 0, "reused": 0}
    with torch.inference_mode():
        full = pruned_forward(small_model.decoder(), e2, layout, PruningMethod())
    torch.testing.assert_close(second.hidden, full.hidden, rtol=1e-5, atol=1e-5)


def test_identical_frame_reuses_the_cached_kv_exactly(small_model):
    """Same frame twice: static tokens are served from the previous query's k, v, which are
    exactly what a recompute would give, so the output equals the full forward."""
    img, e, layout = model_inputs(small_model, seed=3)
    m = VLACache()
    m.setup(small_model.model_spec(layout))
    m.reset()
    _run(small_model, m, img, e, layout, 0)
    res = _run(small_model, m, img, e, layout, 1)
    # 16 patches/view: at most round(150*16/256) = 9 static, 6 relevant per view recomputed
    st = m.query_stats()
    assert st["static"] == 18 and 6 <= st["reused"] <= 18
    assert max(s.n_cached for s in res.shapes) == st["reused"]
    assert res.visual_per_layer == [32] * 4
    with torch.inference_mode():
        full = pruned_forward(small_model.decoder(), e, layout, PruningMethod())
    torch.testing.assert_close(res.hidden, full.hidden, rtol=1e-4, atol=1e-4)
    # served tokens keep their reference frame; the others are refreshed
    served = torch.cat(m._plan_served())
    assert len(served) == st["reused"]
