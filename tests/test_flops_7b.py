"""FLOPs of the real 7B architecture on the meta device (bench.flops)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from bench.flops import count_all, main, meta_decoder, schedule_shapes
from bench.metrics.flops import DecoderFlops, llama_layer_flops_analytic
from bench.registry import CONFIG_DIR
from pruning.forward import LayerShape


def test_meta_count_equals_analytic_formula():
    spec = meta_decoder(hidden=64, mlp=176, heads=4, kv_heads=2)
    counter = DecoderFlops(spec)
    for n, cached in [(37, 0), (20, 9)]:
        flops, _ = counter.count([LayerShape(False, n, cached, 0, False)] * 3)
        assert flops == 3 * llama_layer_flops_analytic(n, n + cached, 64, 176, 4, 2)
    assert counter.count([LayerShape(True, 37, 0, 0, False)]) == (0, 0)


def test_7b_decoder_at_600_tokens():
    spec = meta_decoder(hidden=4096, mlp=11008, heads=32, kv_heads=32)
    flops, _ = DecoderFlops(spec).count([LayerShape(False, 600, 0, 0, False)] * 32)
    assert flops == pytest.approx(7.96e12, rel=2e-3)
    assert flops == 32 * llama_layer_flops_analytic(600, 600, 4096, 11008, 32, 32)


def test_schedule_shapes():
    sched = {"visual": {0: 512, 2: 152}, "reused": {3: 50}, "skip": [5]}
    shapes, visual = schedule_shapes(sched, 6, 512, 600)
    assert [s.n_active for s in shapes[:3]] == [600, 600, 240]
    assert (shapes[3].n_active, shapes[3].n_cached) == (190, 50)
    assert shapes[5].skipped and visual[:4] == [512, 512, 152, 102]


def test_7b_table_against_paper(tmp_path):
    arch = OmegaConf.load(CONFIG_DIR / "model" / "openvla_oft_7b.yaml").flops
    rows, fixed = count_all(arch)
    by = {r["name"]: r for r in rows}
    assert by["none"]["n_total"] == 600
    assert by["none"]["decoder"] == pytest.approx(7.96e12, rel=2e-3)
    assert by["specprune_static"]["decoder_ratio"] == pytest.approx(0.44, abs=0.015)
    assert by["specprune_paper_tokens"]["decoder_ratio"] == pytest.approx(0.37, abs=0.015)
    assert by["specprune"]["decoder_ratio"] < by["specprune_static"]["decoder_ratio"]
    assert 0.5e12 < fixed["vision"] < 1.0e12  # two views x (ViT-L/14 + So400m/14) at 224 px
    out = tmp_path / "t.md"
    assert main(["model=openvla_oft_7b", f"out={out}"]) == 0
    assert "| specprune |" in out.read_text()
