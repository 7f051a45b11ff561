"""The paired latency benchmark: SpecPrune variants get the tag of the rollout run they match,
and a replay on the fake suite writes one row per method and variant."""

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from bench import latency, registry
from bench.errors import UserError
from bench.run import params_tag

ABLATION_TAGS = [
    "alpha=0.6", "alpha=1",
    "alpha=0.8,dynamic_layers=False,controller=False", "alpha=0.8,controller=False",
    "alpha=0.8,use_global=False", "alpha=0.8,layer_weighting=average",
    "alpha=0.8,vt_threshold=0.3", "alpha=0.8,vt_threshold=0.7",
    "alpha=0.8,vr_threshold=0.1", "alpha=0.8,vr_threshold=0.4",
]


def test_ablation_variants_are_tagged_like_their_rollout_runs():
    assert list(latency.parse_variants(["ablations"], 0.8)) == ABLATION_TAGS


@pytest.mark.parametrize("overrides", [
    ["alpha=0.6"],
    ["method.dynamic_layers=false", "method.controller=false"],
    ["method.vt_threshold=0.5", "method.vr_threshold=0.4"],
])
def test_variant_tag_equals_the_runner_folder_name(overrides):
    with initialize_config_dir(str(registry.CONFIG_DIR), version_base=None):
        cfg = compose("config", ["method=specprune", "alpha=0.8", *overrides])
    defaults = OmegaConf.load(registry.CONFIG_DIR / "method" / "specprune.yaml")
    folder = params_tag(cfg.alpha, cfg.method, defaults, cfg.max_steps)
    spec = "+".join(o.removeprefix("method.") for o in overrides)
    assert list(latency.parse_variants([spec], 0.8)) == [folder]


def test_the_plain_run_is_not_a_variant_and_bad_specs_are_refused():
    assert latency.parse_variants(["alpha=0.8", "vt_threshold=0.5"], 0.8) == {}
    with pytest.raises(UserError, match="unknown SpecPrune parameter"):
        latency.parse_variants(["gammma=0.5"], 0.8)
    with pytest.raises(UserError, match="key=value"):
        latency.parse_variants(["controller"], 0.8)
    with pytest.raises(UserError, match="alpha must be in"):
        latency.parse_variants(["alpha=1.5"], 0.8)


def test_replay_on_the_fake_suite_writes_a_row_per_method_and_variant(tmp_path):
    argv = ["suite=fake", "methods=[none,fastv,specprune]",
            "variants=[alpha=0.6,controller=false]", "steps=24", "queries=3", "repeats=1",
            "warmup=0", f"out={tmp_path / 'out'}", f"cache={tmp_path / 'cache'}", "threads=1"]
    cfg = OmegaConf.merge(OmegaConf.create(latency.DEFAULTS), OmegaConf.from_dotlist(argv))
    df = latency.run(cfg)
    got = list(zip(df["method"], df["tag"], strict=True))
    assert got == [("none", "default"), ("fastv", "default"), ("specprune", "alpha=0.8"),
                   ("specprune", "alpha=0.6"), ("specprune", "alpha=0.8,controller=False")]
    assert (df["speedup"] > 0).all() and df.loc[0, "speedup"] == 1.0
    doc = json.loads((tmp_path / "out" / "tiny_vla_fake.json").read_text())
    scaled = {r["tag"]: r["scaled"] for r in doc["rows"] if r["method"] == "specprune"}
    # alpha scales SpecPrune's budgets: the 0.6 variant keeps fewer global tokens than 0.8
    assert scaled["alpha=0.6"]["K_global"] < scaled["alpha=0.8"]["K_global"]
    assert scaled["alpha=0.8,controller=False"]["K_global"] == scaled["alpha=0.8"]["K_global"]
