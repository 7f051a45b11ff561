"""Paired latency benchmark: the same recorded LIBERO observations through every method.

    python -m bench.latency suite=libero_spatial alpha=0.8 repeats=5
    python -m bench.latency methods=[none,specprune] queries=16

1. Records one real episode of the suite (task `task`, initial state `init`) driven by the
   unpruned model, rendering every step, and caches its frames under `data/latency/` (so past
   reference frames exist for every query).
2. Replays its policy queries through `none` and each method in one process: for each query
   the methods run one after another in a shuffled order (alternating, so machine noise hits
   all alike), each method seeing the episode's queries in order (its state carries over as in
   a rollout). Repeated `repeats` times.
3. Writes `results/latency/{model}_{suite}.csv` / `.json`: per method the median latency,
   speedup over `none`, FLOPs (decoder and end to end) as % of `none`, mean visual tokens
   kept, method overhead %, per-stage medians, the speedup its FLOPs reduction allows
   (`flops_speedup_bound`), the measured speedup as a share of it (`of_bound_pct`) and the
   share of the possible gain realised (`realised_pct`, (speedup - 1) / (bound - 1)).
FastV / DivPrune / EfficientVLA configured with `match_specprune` are matched to the SpecPrune
run at the same alpha under results/runs if one exists, else to SpecPrune's mean measured here.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from bench import registry
from bench.errors import UserError
from bench.results import git_commit, machine_info, package_versions
from bench.suites.base import Observation

ALL_METHODS = ["none", "fastv", "divprune", "sparsevlm", "vla_cache", "efficientvla",
               "specprune"]
DEFAULTS = {
    "model": "tiny_vla", "suite": "libero_spatial", "methods": ALL_METHODS, "alpha": 0.8,
    "task": 0, "init": 0, "seed": 7, "steps": 160, "queries": 20, "repeats": 5, "warmup": 3,
    "threads": 0, "out": "results/latency", "cache": "data/latency", "weights": "auto",
    "shuffle_seed": 0, "method_overrides": {},
    # SpecPrune variants replayed beside the methods, each `alpha=A` and/or `key=value` joined
    # by `+` (e.g. `dynamic_layers=false+controller=false`), or `ablations`: the campaign's
    # ablation set (bench/ablations.py). Each row gets the tag of the rollout run it matches.
    "variants": [],
}


def parse_variants(items, alpha: float) -> dict[str, tuple[float, dict]]:
    """Variant specs -> {run tag: (alpha, SpecPrune param overrides)}, in the given order.

    The tag is the folder name `bench.run` gives the same configuration, so the report pairs
    a variant's replay row with its rollouts. A spec equal to the plain SpecPrune run at
    `alpha` is dropped (that run is in the benchmark already)."""
    from bench.ablations import variant_specs
    from bench.run import params_tag

    specs: list[str] = []
    for item in items or []:
        specs += variant_specs() if str(item) == "ablations" else [str(item)]
    defaults = OmegaConf.load(registry.CONFIG_DIR / "method" / "specprune.yaml")
    out: dict[str, tuple[float, dict]] = {}
    for spec in specs:
        pairs = [p for p in spec.split("+") if p]
        if not pairs or any("=" not in p for p in pairs):
            raise UserError(f"variant {spec!r}: expected key=value pairs joined by '+', "
                            "e.g. alpha=0.6 or dynamic_layers=false+controller=false")
        parsed = OmegaConf.from_dotlist(pairs)
        a = float(parsed.pop("alpha", alpha))
        if not 0 < a <= 1:
            raise UserError(f"variant {spec!r}: alpha must be in (0, 1]")
        unknown = [k for k in parsed if k not in defaults]
        if unknown:
            raise UserError(f"variant {spec!r}: unknown SpecPrune parameter(s) {unknown}; "
                            f"known: {', '.join(k for k in defaults if not k.startswith('_'))}")
        params = OmegaConf.merge(defaults, parsed)
        tag = params_tag(a, params, defaults)
        if tag != f"alpha={alpha:g}":
            out[tag] = (a, OmegaConf.to_container(parsed))
    return out


def _suite(name: str):
    cfg = OmegaConf.load(registry.CONFIG_DIR / "suite" / f"{name}.yaml")
    return hydra.utils.instantiate(cfg)


def _model(name: str, suite: str, weights: str):
    cfg = OmegaConf.to_container(OmegaConf.load(registry.CONFIG_DIR / "model" / f"{name}.yaml"))
    cfg.pop("name", None)
    cfg["weights"] = weights
    if "suite" in cfg:
        cfg["suite"] = suite
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = hydra.utils.instantiate(cfg)
    for w in caught:
        print(f"WARNING: {w.message}", file=sys.stderr)
    return m


def record_episode(cfg, model) -> dict:
    """Frames of every step of one episode driven by the unpruned model (cached on disk)."""
    from bench.policy import Policy
    from pruning.none import NoPruning

    sha = model.describe().get("weights_sha256") or "random"
    name = f"{cfg.suite}_t{cfg.task:02d}_i{cfg.init:03d}_s{cfg.seed}_{cfg.steps}_{sha}.npz"
    path = Path(cfg.cache) / name
    if path.exists():
        d = np.load(path, allow_pickle=False)
        return {k: d[k] for k in d.files}
    suite = _suite(cfg.suite)
    env = suite.make_env(cfg.task)
    env.reset(cfg.init, cfg.seed)
    policy = Policy(model, NoPruning(), count_flops=False)
    policy.reset(env.instruction)
    frames, proprio, chunk = [], [], []
    for step in tqdm(range(cfg.steps), desc=f"record {cfg.suite} task {cfg.task}", unit="step"):
        images = env.render()
        frames.append(np.stack([images[v] for v in model.view_names]))
        proprio.append(env.proprio())
        if not chunk:
            actions, _ = policy(Observation(images, proprio[-1]), step)
            chunk = list(actions)
        if env.step(chunk.pop(0)):
            break
    env.close()
    out = {"frames": np.stack(frames), "proprio": np.stack(proprio),
           "instruction": np.array(env.instruction), "views": np.array(model.view_names)}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def _method(name: str, alpha: float, overrides: dict):
    cfg = OmegaConf.load(registry.CONFIG_DIR / "method" / f"{name}.yaml")
    cfg = OmegaConf.merge(cfg, overrides.get(name, {}))
    return hydra.utils.instantiate(cfg, alpha=alpha, _convert_="all"), cfg


def run(cfg) -> pd.DataFrame:
    for m in cfg.methods:
        registry.check("method", m)
    registry.check("suite", cfg.suite)
    registry.check("model", cfg.model)
    if not 0 < cfg.alpha <= 1:
        raise UserError(f"alpha must be in (0, 1], got {cfg.alpha}")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    from bench.policy import Policy

    model = _model(cfg.model, cfg.suite, cfg.weights)
    ep = record_episode(cfg, model)
    views = [str(v) for v in ep["views"]]
    frames, proprio = ep["frames"], ep["proprio"]
    instruction = str(ep["instruction"])
    chunk = model.chunk_len
    q_steps = list(range(0, len(frames), chunk))[: cfg.queries]

    def obs_at(step: int) -> dict:
        return {v: frames[step, i] for i, v in enumerate(views)}

    variants = parse_variants(cfg.variants, float(cfg.alpha))
    methods = list(dict.fromkeys(["none", *cfg.methods]))
    policies: dict[str, Policy] = {}
    match_source = None
    tmp = tempfile.TemporaryDirectory()

    def build(name: str) -> Policy:
        nonlocal match_source
        if name in variants:
            a, params = variants[name]
            method, _ = _method("specprune", a, {"specprune": params})
            return Policy(model, method, count_flops=True)
        overrides = OmegaConf.to_container(cfg.method_overrides) or {}
        raw = OmegaConf.load(registry.CONFIG_DIR / "method" / f"{name}.yaml")
        matching = any(raw.get(k) == "match_specprune" for k in ("keep", "k_final"))
        if matching:
            from pruning.common import specprune_run_path

            real = specprune_run_path(cfg.model, cfg.suite, "results/runs", cfg.alpha)
            extra = {"match_model": cfg.model, "match_suite": cfg.suite}
            if real.exists():
                match_source = str(real)
            else:
                extra["match_root"] = tmp.name
                match_source = "specprune in this benchmark"
            overrides = {**overrides, name: {**overrides.get(name, {}), **extra}}
        method, _ = _method(name, float(cfg.alpha), overrides)
        return Policy(model, method, count_flops=True)

    # SpecPrune first when another method matches its token count.
    order = sorted(methods, key=lambda m: m != "specprune")
    records: dict[str, list[dict]] = {m: [] for m in methods}

    def one_pass(names: list[str], rec: bool, rng: random.Random) -> None:
        for n in names:
            policies[n].reset(instruction)
        for s in q_steps:
            rng.shuffle(names)
            for n in names:
                pol = policies[n]
                past = {}
                for back in pol.frames_needed():
                    b = min(int(back), s)
                    past[b] = obs_at(s - b)
                _, r = pol(Observation(obs_at(s), proprio[s]), s, past)
                if rec:
                    records[n].append(r)

    rng = random.Random(cfg.shuffle_seed)
    # Build specprune (and none) first; a measured SpecPrune mean feeds keep matching.
    first = [m for m in order if m in ("none", "specprune")]
    for n in first:
        policies[n] = build(n)
    for _ in range(cfg.warmup):
        one_pass(list(first), False, rng)
    if "specprune" in methods:
        sp = []
        policies["specprune"].reset(instruction)
        for s in q_steps:
            pol = policies["specprune"]
            past = {min(int(b), s): obs_at(s - min(int(b), s)) for b in pol.frames_needed()}
            _, r = pol(Observation(obs_at(s), proprio[s]), s, past)
            sp.append(r)
        mean = float(np.mean([np.mean(r["kept_per_layer"]) for r in sp]))
        d = Path(tmp.name) / cfg.model / cfg.suite / "specprune" / f"alpha={cfg.alpha:g}"
        d.mkdir(parents=True)
        (d / "episodes.jsonl").write_text(json.dumps({
            "status": "ok", "n_queries": len(sp),
            "tokens": {"visual_kept_mean": mean, "visual_total": sp[0]["visual_total"],
                       "kept_per_layer_mean": np.mean([r["kept_per_layer"] for r in sp],
                                                      0).tolist()}}) + "\n")
    methods += list(variants)
    records.update({v: [] for v in variants})
    for n in methods:
        if n not in policies:
            policies[n] = build(n)
    for _ in range(cfg.warmup):
        one_pass(list(methods), False, rng)
    for _ in tqdm(range(cfg.repeats), desc="paired replay", unit="rep"):
        one_pass(list(methods), True, rng)

    base = records["none"]
    base_ms = float(np.median([r["latency_ms"] for r in base]))
    base_dec = float(np.mean([r["flops_decoder"] for r in base]))
    base_tot = float(np.mean([r["flops_total"] for r in base]))
    rows = []
    for n in methods:
        rs = records[n]
        lat = np.array([r["latency_ms"] for r in rs])
        med = float(np.median(lat))
        stages = {k: float(np.median([r["stages"][k] for r in rs])) for k in rs[0]["stages"]}
        tot = float(np.mean([r["flops_total"] for r in rs]))
        speedup = base_ms / med
        bound = base_tot / tot
        method = policies[n].method
        uses_alpha = getattr(method, "uses_alpha", True)
        if n in variants:
            name, tag, alpha = "specprune", n, variants[n][0]
        else:
            name, tag = n, f"alpha={cfg.alpha:g}" if uses_alpha else "default"
            alpha = float(cfg.alpha) if uses_alpha else None
        rows.append({
            "method": name, "tag": tag, "alpha": alpha,
            "median_ms": med, "p10_ms": float(np.percentile(lat, 10)),
            "p90_ms": float(np.percentile(lat, 90)), "speedup": speedup,
            "decoder_flops_pct": 100 * float(np.mean([r["flops_decoder"] for r in rs])) / base_dec,
            "total_flops_pct": 100 * tot / base_tot,
            "visual_kept_mean": float(np.mean([np.mean(r["kept_per_layer"]) for r in rs])),
            "overhead_pct": 100 * stages["method"] / med,
            "flops_speedup_bound": bound,
            # speedup as a share of what the FLOPs reduction allows (issue target: >= 80%)
            "of_bound_pct": 100 * speedup / bound if bound > 1.001 else float("nan"),
            # the stricter share of the possible gain: (speedup - 1) / (bound - 1)
            "realised_pct": 100 * (speedup - 1) / (bound - 1) if bound > 1.001 else float("nan"),
            "n_obs": len(q_steps), "n_repeats": int(cfg.repeats),
            "stages_median": stages, "scaled": method.scaled(),
            # means (they add up, unlike medians): the method stage, and the components the
            # method times itself (`ms_*` in its per-query stats, e.g. SpecPrune's similarity)
            "stages_mean": {k: float(np.mean([r["stages"][k] for r in rs]))
                            for k in rs[0]["stages"]},
            "latency_mean_ms": float(lat.mean()),
            "method_parts_mean": {k[3:]: float(np.mean([r["method"].get(k, 0.0) for r in rs]))
                                  for k in sorted({k for r in rs for k in r["method"]
                                                   if k.startswith("ms_")})},
        })
    tmp.cleanup()
    df = pd.DataFrame(rows)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{model.name}_{cfg.suite}"
    df.drop(columns=["stages_median", "scaled", "stages_mean", "method_parts_mean"]).to_csv(out / f"{stem}.csv", index=False,
                                                        float_format="%.4g")
    (out / f"{stem}.json").write_text(json.dumps({
        "model": model.name, "model_info": model.describe(), "suite": cfg.suite,
        "episode": {"task": cfg.task, "init": cfg.init, "seed": cfg.seed,
                    "query_steps": q_steps},
        "keep_match_source": match_source, "machine": machine_info(),
        "git_commit": git_commit(), "packages": package_versions(),
        "config": OmegaConf.to_container(cfg),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": rows}, indent=1) + "\n")
    return df


def main(argv: list[str]) -> None:
    try:
        cfg = OmegaConf.merge(OmegaConf.create(DEFAULTS), OmegaConf.from_dotlist(argv))
        df = run(cfg)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    cols = ["method", "tag", "median_ms", "speedup", "decoder_flops_pct", "total_flops_pct",
            "visual_kept_mean", "overhead_pct", "flops_speedup_bound", "of_bound_pct",
            "realised_pct"]
    print(df[cols].to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main(sys.argv[1:])
