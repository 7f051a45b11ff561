"""SpecPrune-VLA on hand-made inputs whose answers are worked out by hand.

The hand layout: bos(0) | view a: positions 1-4 | view b: 5-8 | text 9-10 | action 11-12.
With `ref_view_tokens=4` (the views' own size) and alpha 1, every K is the config value.
"""

import math

import numpy as np
import pytest
import torch

from pruning.base import AttentionScores, ModelSpec, QueryContext
from pruning.forward import TokenStream, pruned_forward
from pruning.layout import TokenLayout
from pruning.specprune import (
    SpecPrune,
    attention_entropy,
    controller_mode,
    reference_frame_back,
)

LAYOUT = TokenLayout.build([("bos", "other", 1), ("a", "visual", 4), ("b", "visual", 4),
                            ("instruction", "text", 2), ("action", "action", 2)],
                           patch_grid=(2, 2))
TEXT_ROWS = torch.tensor([9, 10])


def spec(num_layers: int, layout: TokenLayout = LAYOUT) -> ModelSpec:
    return ModelSpec(num_layers, 1, 4, True, layout, 1)


def method(num_layers: int = 32, **kw) -> SpecPrune:
    cfg = dict(alpha=1.0, K_global=1, K_local=1, K_dynamic=1, K_local_fine=2, K_dynamic_fine=1,
               ref_view_tokens=4, ref_layers=num_layers)
    cfg.update(kw)
    m = SpecPrune(**cfg)
    m.setup(spec(num_layers))
    m.reset()
    return m


def scores(stream: TokenStream, vis: dict[int, float], default: float = 0.001):
    """Attention of the two text rows: `vis[pos]` on visual key pos, the rest on bos."""
    key = stream.orig_idx.clone()
    p = torch.zeros(1, 2, len(key))
    for j, o in enumerate(key.tolist()):
        if 1 <= o <= 8:
            p[0, :, j] = vis.get(o, default)
    p[0, :, 0] = 1 - p[0, 0].sum()
    return AttentionScores(p, key, TEXT_ROWS)


def run_query(m: SpecPrune, num_layers: int, per_layer: dict[int, dict], ctx=None):
    """Drive the hooks as the shared loop does. Returns (visual kept entering each layer,
    layers whose scores were requested)."""
    st = TokenStream(torch.zeros(1, LAYOUT.n_tokens, 4), LAYOUT)
    m.before_llm(ctx, st)
    kept, asked = [], []
    for layer in range(num_layers):
        kept.append(sorted(st.visual_orig_idx().tolist()))
        if m.score_request(layer):
            asked.append(layer)
            m.after_layer(layer, st, scores(st, per_layer.get(layer, {})))
    return kept, asked


def ctx_with(cur: dict, past: dict) -> QueryContext:
    return QueryContext(layout=LAYOUT, step=20, query_idx=1, patches=cur, past_patches=past)


ALL = list(range(1, 9))


def test_union_of_global_dynamic_local_and_first_query_unpruned():
    m = method(dynamic_layers=False, controller=False)
    # query 1: unpruned, only the global layers (15, 31 of 32) scored
    glob = {15: {2: 0.3, 7: 0.2}, 31: {2: 0.2, 7: 0.3}}
    kept, asked = run_query(m, 32, glob)
    assert kept == [ALL] * 32 and asked == [15, 31]
    assert m.query_stats()["pruned"] is False and math.isnan(m.query_stats()["recall"])
    assert m.frames_needed() == [11]  # v_t = 0: T = floor(7 - 0) + 4
    # query 2: V_global = {2, 7} (previous query's top-1 per view)
    # V_dynamic: view a patch 3 (pos 4) and view b patches 0 (pos 5, cos 0.58) and 1 (pos 6,
    #   cos 0.82) are below tau; K_dynamic = 1 keeps the least similar: pos 5. View a patch 2
    #   (cos 0.996) is above tau.
    ones = torch.ones(4, 3)
    old_a, old_b = ones.clone(), ones.clone()
    old_a[3] = torch.tensor([1.0, 0, 0])
    old_a[2] = torch.tensor([1.0, 1, 1.2])
    old_b[0] = torch.tensor([0.0, 1, 0])
    old_b[1] = torch.tensor([1.0, 1, 0])
    ctx = ctx_with({"a": ones, "b": ones}, {8: {"a": old_a, "b": old_b}})
    # V_local: layer 0 tops {1, 6}, layer 1 tops {1, 8}
    local = {0: {1: 0.2, 6: 0.2}, 1: {1: 0.2, 8: 0.2}}
    kept, asked = run_query(m, 32, {**local, **glob}, ctx)
    assert asked == [0, 1, 15, 31]
    assert kept[0] == kept[1] == ALL  # the local layers run on every token
    assert kept[2] == [1, 2, 4, 5, 6, 7, 8] == kept[31]  # pos 3 in none of the sets
    st = m.query_stats()
    assert (st["n_global"], st["n_dynamic"], st["n_local"], st["kept_static"]) == (2, 2, 3, 7)
    assert st["ref_frame_back"] == 11 and st["ref_frame_used"] == 8 and st["pruned"] is True


def test_global_scores_of_previous_query_used_next_and_recall():
    m = method(dynamic_layers=False, controller=False, K_dynamic=0)
    run_query(m, 32, {15: {2: 0.3, 7: 0.2}, 31: {2: 0.3, 7: 0.2}})
    # query 2 keeps global {2, 7} + local {1, 8}; its important set is {2, 8}:
    # recall = |{2, 7} & {2, 8}| / |{2, 8}| = 0.5
    local = {0: {1: 0.2, 8: 0.2}, 1: {1: 0.2, 8: 0.2}}
    glob = {15: {2: 0.3, 8: 0.2}, 31: {2: 0.3, 8: 0.2}}
    kept, _ = run_query(m, 32, {**local, **glob})
    assert kept[2] == [1, 2, 7, 8] and m.query_stats()["recall"] == 0.5
    # query 3 takes its global set {2, 8} from query 2's scores: 7 is gone
    kept, _ = run_query(m, 32, {**local, **glob})
    assert kept[2] == [1, 2, 8] and m.query_stats()["recall"] == 1.0


def test_global_average_over_layers_absent_counts_zero():
    m = method(dynamic_layers=False, controller=False, K_dynamic=0)
    # layer 15: pos 3 0.30, pos 4 0.20; layer 31: pos 4 0.25, pos 3 absent (score 0 there)
    # averages: pos 3 0.15, pos 4 0.225 -> view a's important token is 4
    st = TokenStream(torch.zeros(1, LAYOUT.n_tokens, 4), LAYOUT)
    m.before_llm(None, st)
    m.after_layer(15, st, scores(st, {3: 0.3, 4: 0.2}))
    st.keep_visual(torch.tensor([1, 2, 4, 5, 6, 7, 8]))
    m.after_layer(31, st, scores(st, {4: 0.25}))
    assert m.important_positions()[0] == 4


def test_reference_frame_from_velocity_and_clamping():
    # T = floor(7 - v) + 4
    assert [reference_frame_back(v, -1, 7, 4, 11) for v in (0, 0.5, 1.0, 1.2, 1.7)] == \
        [11, 10, 10, 9, 9]
    assert reference_frame_back(0.0, -1, 7, 4, 8) == 8  # clamped to max_back
    assert reference_frame_back(50.0, -1, 7, 4, 11) == 1  # at least one step back
    m = method(dynamic_layers=False, K_global=0, K_local=1)
    assert m.max_frame_back == 11
    run_query(m, 32, {})
    m.observe(None, torch.tensor([[0.0] * 7, [1.2, 0, 0, 0, 0, 0, 1]]))  # last row: v_t 1.2
    assert m.frames_needed() == [9]
    cur = {"a": torch.ones(4, 3), "b": torch.ones(4, 3)}
    past = {3: cur, 6: cur}  # the largest frame <= 9 steps back that exists is used
    run_query(m, 32, {}, ctx_with(cur, past))
    assert m.query_stats()["ref_frame_used"] == 6
    run_query(m, 32, {}, ctx_with(cur, {0: cur}))  # only the current frame: nothing changed
    assert m.query_stats()["n_dynamic"] == 0


@pytest.mark.parametrize("action,mode", [
    ([0.3, 0.3, 0.0, 0, 0, 0], "fine"),       # v_t 0.42, v_r 0, dz 0
    ([0.5, 0.0, 0.0, 0, 0, 0], "coarse"),     # v_t == 0.5: not < 0.5
    ([0.0, 0.4, -0.2, 0, 0, 0], "fine"),      # moving down
    ([0.0, 0.0, 0.01, 0, 0, 0], "coarse"),    # dz > 0
    ([0.0, 0.0, 0.0, 0.2, 0, 0], "coarse"),   # v_r == 0.2: not < 0.2
    ([0.0, 0.0, 0.0, 0.1, 0.1, 0.1], "fine"),  # v_r 0.17
])
def test_controller_thresholds(action, mode):
    a = torch.tensor(action + [1.0], dtype=torch.float64)
    assert controller_mode(a, 0.5, 0.2)[0] == mode


def test_controller_uses_last_executed_action_and_fine_ks():
    m = method(dynamic_layers=False, K_global=0, K_dynamic=0, K_local=1, K_local_fine=2)
    run_query(m, 32, {})
    slow_last = torch.tensor([[0.9, 0.9, 0.9, 0, 0, 0, 1], [0.1, 0, -0.1, 0, 0, 0, 1]])
    m.observe(None, slow_last)
    local = {0: {1: 0.3, 2: 0.2, 5: 0.3, 6: 0.2}, 1: {1: 0.3, 2: 0.2, 5: 0.3, 6: 0.2}}
    kept, _ = run_query(m, 32, local)
    assert m.query_stats()["mode"] == "fine" and kept[2] == [1, 2, 5, 6]  # K_local_fine = 2
    m.observe(None, slow_last.flip(0))  # last row fast
    kept, _ = run_query(m, 32, local)
    assert m.query_stats()["mode"] == "coarse" and kept[2] == [1, 5]  # K_local = 1
    off = method(dynamic_layers=False, controller=False)
    run_query(off, 32, {})
    off.observe(None, slow_last)
    run_query(off, 32, local)
    assert off.query_stats()["mode"] == "coarse"


def test_entropy():
    p = torch.tensor([[[0.25, 0.25, 0.25, 0.25]]])
    assert attention_entropy(p) == pytest.approx(math.log(4))
    assert attention_entropy(torch.tensor([[[0.5, 0.5, 0.0, 0.0]]]) * 0.5) == \
        pytest.approx(math.log(2))  # renormalised over the visual keys


# Layer-level pruning on 8 layers (identity scaling): static off, S updated at layers 2 and 3,
# layer 4 runs on the top gamma = 7/8 by S, i.e. one of the 8 visual tokens is dropped.
# Rankings at query 2 (A = pos 3, B = pos 6; ranks 0..5 go to 1, 2, 4, 5, 7, 8):
#   layer 2: B rank 6, A rank 7;   layer 3: A rank 6, B rank 7.
# S = (1-b) * b * s2 + b * s3 with b = 0.5: S = 0.25 s2 + 0.5 s3.
TOP6 = {1: 0.08, 2: 0.07, 4: 0.06, 5: 0.05, 7: 0.04, 8: 0.03}
LAYER_SCORES = {2: {**TOP6, 6: 0.02, 3: 0.01}, 3: {**TOP6, 3: 0.02, 6: 0.01}}
DYN = dict(static=False, controller=False, beta=0.5, rank_k=1.0, gamma=0.875,
           local_layers=[0, 1], global_layers=[6, 7], prune_layers=[4])


def _w(rank: int) -> float:
    """sigmoid(-rank) / sum over ranks 0..7."""
    sig = [1 / (1 + math.exp(r)) for r in range(8)]
    return sig[rank] / sum(sig)


def test_ema_update_and_pruning_order_average():
    m = method(8, layer_weighting="average", **{**DYN, "gamma": 1.0})
    kept, asked = run_query(m, 8, {})
    assert asked == [6, 7] and kept == [ALL] * 8  # no entropy needed: first query scores only
    kept, asked = run_query(m, 8, LAYER_SCORES)
    assert asked == [2, 3, 6, 7] and kept[4] == ALL  # gamma 1: nothing dropped
    S = m.importance()
    assert S[3] == pytest.approx(0.25 * _w(7) + 0.5 * _w(6))  # A: .000236 + .001284
    assert S[6] == pytest.approx(0.25 * _w(6) + 0.5 * _w(7))  # B: .000642 + .000473
    assert S[1] == pytest.approx(0.75 * _w(0))
    m = method(8, layer_weighting="average", **DYN)
    run_query(m, 8, {})
    kept, _ = run_query(m, 8, LAYER_SCORES)
    assert kept[3] == ALL and kept[4] == [1, 2, 3, 4, 5, 7, 8]  # B dropped, from layer 4 on
    assert sorted(m.importance()) == kept[4]


def test_entropy_weighting_changes_the_order_and_is_reused():
    m = method(8, layer_weighting="entropy", **DYN)
    # query 1: layer 2 focused (0.93 on pos 1, 0.01 elsewhere: H = 0.390), layer 3 uniform
    # (H = ln 8 = 2.079): w_conf 2.565 vs 0.481
    focused = {1: 0.93, **{p: 0.01 for p in range(2, 9)}}
    uniform = {p: 0.125 for p in ALL}
    kept, asked = run_query(m, 8, {2: focused, 3: uniform})
    assert asked == [2, 3, 6, 7] and kept == [ALL] * 8
    h2 = -(0.93 * math.log(0.93) + 7 * 0.01 * math.log(0.01))
    assert m._w_conf[2] == pytest.approx(1 / h2, rel=1e-4)
    assert m._w_conf[3] == pytest.approx(1 / math.log(8), rel=1e-4)
    conf = dict(m._w_conf)
    # query 2: S_A = .25 * 2.565 w7 + .5 * .481 w6 = .00122 < S_B = .00187: A dropped
    kept, _ = run_query(m, 8, LAYER_SCORES)
    assert kept[4] == [1, 2, 4, 5, 6, 7, 8]
    assert m._w_conf == conf  # computed at the first query only
    assert m.importance()[6] == pytest.approx(0.25 * conf[2] * _w(6) + 0.5 * conf[3] * _w(7))


def test_alpha_scaling_of_ks_and_layers():
    n = 100
    lay = TokenLayout.build([("bos", "other", 1), ("a", "visual", n), ("b", "visual", n),
                             ("instruction", "text", 5), ("action", "action", 8)], (10, 10))
    expect = {0.6: (7, 6, 9, 5, 2, 13), 0.8: (9, 8, 13, 6, 3, 17), 1.0: (12, 9, 16, 8, 4, 21)}
    for alpha, (kg, kl, klf, kd, kdf, kl_noglobal) in expect.items():
        m = SpecPrune(alpha=alpha)
        m.setup(spec(8, lay))
        assert (m.k_global, m.k_local["coarse"], m.k_local["fine"]) == (kg, kl, klf)
        assert (m.k_dynamic["coarse"], m.k_dynamic["fine"]) == (kd, kdf)
        m = SpecPrune(alpha=alpha, use_global=False)
        m.setup(spec(8, lay))
        assert m.k_local["coarse"] == kl_noglobal
    m = SpecPrune()  # local_collision: merge (METHODS.md's literal scaling)
    m.setup(spec(8, lay))
    sc = m.scaled()
    assert sc["local_layers"] == [0] and sc["static_prune_after_layer"] == 0
    assert sc["global_layers"] == [4, 7] and sc["prune_layers"] == [3, 4, 5, 6]
    assert sc["score_update_layers"] == [1, 2, 3, 4, 5]
    m.setup(spec(4, lay))
    assert (m.local_layers, m.global_layers, m.prune_layers) == ([0], [2, 3], [2, 3])
    m = SpecPrune(local_collision="shift")
    m.setup(spec(8, lay))
    sc = m.scaled()
    assert sc["local_layers"] == [0, 1] and sc["static_prune_after_layer"] == 1
    assert sc["global_layers"] == [4, 7] and sc["prune_layers"] == [3, 4, 5, 6]
    assert sc["score_update_layers"] == [2, 3, 4, 5]
    for collision in ("merge", "shift"):
        m = SpecPrune(local_collision=collision)
        m.setup(spec(32, lay))
        assert (m.local_layers, m.global_layers, m.prune_layers) == ([0, 1], [15, 31],
                                                                     [10, 15, 20, 25])
    m = SpecPrune(local_collision="shift")
    m.setup(spec(4, lay))
    assert (m.local_layers, m.global_layers, m.prune_layers) == ([0, 1], [2, 3], [3])


def test_no_global_ablation_keeps_recording_recall():
    m = method(dynamic_layers=False, use_global=False, controller=False, K_local_no_global=2,
               K_dynamic=0)
    run_query(m, 32, {15: {2: 0.3, 7: 0.2}, 31: {2: 0.3, 7: 0.2}})
    local = {0: {1: 0.3, 3: 0.2, 5: 0.3, 8: 0.2}, 1: {1: 0.3, 3: 0.2, 5: 0.3, 8: 0.2}}
    kept, _ = run_query(m, 32, {**local, 15: {3: 0.3, 8: 0.2}, 31: {3: 0.3, 8: 0.2}})
    assert kept[2] == [1, 3, 5, 8]  # no global tokens (2, 7); top 2 local per view
    assert m.query_stats()["n_global"] == 0 and m.query_stats()["recall"] == 0.0


def test_end_to_end_on_small_model_kept_counts_shrink(small_model, images):
    """4 layers, 16 patches per view: local (0, 1) (local_collision shift), global (2, 3),
    prune before layer 3. alpha 0.8: K_global 2, K_local 1, K_dynamic 1 per view -> 2..5
    tokens per view."""
    m = SpecPrune(alpha=0.8, local_collision="shift")
    pol_spec = small_model.model_spec(small_model.layout())
    m.setup(pol_spec)
    m.reset()
    dec = small_model.decoder()
    embeds, layout = small_model.encode(images, np.zeros(8, np.float32))
    with torch.inference_mode():
        res = pruned_forward(dec, embeds, layout, m, QueryContext(layout, 0, 0, {}))
        assert res.visual_per_layer == [32] * 4 and m.query_stats()["pruned"] is False
        m.observe(None, small_model.head(res.hidden))
        moved = {v: np.roll(x, 20, axis=1) for v, x in images.items()}
        back = m.frames_needed()[0]
        ctx = QueryContext(layout, 8, 1, small_model.patches(moved),
                           {back: small_model.patches(images)})
        res = pruned_forward(dec, embeds, layout, m, ctx)
    st = m.query_stats()
    n = st["kept_static"]
    assert 4 <= n <= 10 and st["n_global"] == 4 and st["n_dynamic"] == 2
    assert res.visual_per_layer == [32, 32, n, math.floor(0.9 * n + 0.5)]
    assert st["mode"] in ("fine", "coarse") and 0 <= st["recall"] <= 1
    assert torch.isfinite(res.hidden).all()
    # the method's own time, by component (paper Table 9): every part ran and lies within
    # the method time the loop measured (entropy is computed at the first query only)
    parts = {k: v for k, v in st.items() if k.startswith("ms_")}
    assert set(parts) == {"ms_similarity", "ms_scores", "ms_entropy", "ms_topk", "ms_prune"}
    assert parts["ms_entropy"] == 0 and all(parts[k] > 0 for k in parts if k != "ms_entropy")
    assert sum(parts.values()) <= res.method_s * 1e3


def test_config_file_instantiates_with_alpha():
    import hydra
    from omegaconf import OmegaConf

    from bench.registry import CONFIG_DIR

    cfg = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "method" / "specprune.yaml"))
    m = hydra.utils.instantiate(cfg, alpha=0.6, _convert_="all")
    assert isinstance(m, SpecPrune) and m.alpha == 0.6 and m.K["local_no_global"] == 54
    for key in ("static", "dynamic_layers", "controller", "use_global", "layer_weighting",
                "vt_threshold", "vr_threshold"):
        assert key in cfg


def test_bad_config_is_a_user_error():
    from bench.errors import UserError

    with pytest.raises(UserError, match="layer_weighting"):
        SpecPrune(layer_weighting="max")
    with pytest.raises(UserError, match="alpha"):
        SpecPrune(alpha=1.5)


def test_runner_records_mode_and_recall(small_model, tmp_path):
    import json

    from bench.policy import Policy
    from bench.results import RunStore
    from bench.runner import RunOptions, run
    from bench.suites.fake import FakeSuite

    suite = FakeSuite(name="fake", max_steps=24, num_wait_steps=2, camera_size=64)
    recs = run(suite, Policy(small_model, SpecPrune(alpha=0.8)), RunStore(tmp_path),
               RunOptions(trials=1, warmup=1), [0])
    r = recs[0]
    n = r["n_queries"]
    assert r["status"] == "ok" and n >= 2
    ms = r["method_stats"]
    assert len(ms["modes"]) == n and set(ms["modes"]) <= {"fine", "coarse"}
    assert 0 <= ms["recall_mean"] <= 1 and ms["pruned_frac"] == pytest.approx((n - 1) / n)
    q = [json.loads(x) for x in (tmp_path / "queries.jsonl").read_text().splitlines()]
    assert q[0]["kept_per_layer"] == [32] * 4 and q[0]["method"]["pruned"] is False
    assert all(x["kept_per_layer"][2] < 32 for x in q[1:])
    # step 8 asks for 9..11 steps back: the runner clamps to the 8 that exist
    assert q[1]["method"]["ref_frame_used"] == 8 and q[1]["method"]["ref_frame_back"] >= 9


def test_patch_cosine_on_uint8_patches_and_model_patch_layout(small_model, images):
    from pruning.common import patch_cosine

    cur = np.array([[255, 0, 0], [0, 0, 0], [10, 20, 30]], dtype=np.uint8)
    ref = np.array([[255, 255, 0], [0, 0, 0], [0, 0, 0]], dtype=np.uint8)
    # cos 1/sqrt(2); two black patches count as identical; a black patch against any other: 0
    np.testing.assert_allclose(patch_cosine(cur, ref), [2 ** -0.5, 1.0, 0.0], atol=1e-7)
    # adapter patches: row r * grid + c holds the (r, c) block of the image, pixel rows in order
    p = small_model.patch_size
    g = images["agentview"].shape[0] // p
    out = small_model.patches(images)["agentview"]
    assert out.dtype == np.uint8 and out.shape == (g * g, p * p * 3)
    np.testing.assert_array_equal(out[1 * g + 2],
                                  images["agentview"][p:2 * p, 2 * p:3 * p].reshape(-1))


def test_tokens_dropped_outside_the_method_are_followed():
    """Another component drops visual token 1 before the local layer: the local top of view a
    falls to the best token present (2), and the static prune keeps the right stream rows."""
    m = method(dynamic_layers=False, controller=False, K_global=0, K_dynamic=0)
    run_query(m, 32, {})
    st = TokenStream(torch.zeros(1, LAYOUT.n_tokens, 4), LAYOUT)
    m.before_llm(None, st)
    st.keep_visual(torch.tensor([2, 3, 4, 5, 6, 7, 8]))
    m.after_layer(0, st, scores(st, {1: 0.3, 5: 0.3}))
    m.after_layer(1, st, scores(st, {5: 0.3}))
    assert st.visual_orig_idx().tolist() == [2, 5] and m.query_stats()["kept_static"] == 2
