"""Entry point: `python -m bench.run model=tiny_vla method=none suite=libero_spatial alpha=0.8`.

Sweeps: `python -m bench.run -m method=none,fastv,specprune alpha=0.6,0.8,1.0` (Hydra
multirun, parallel jobs via the joblib launcher). Every input a user can get wrong is checked
before anything is written; such errors end in one line and exit code 2.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import hydra
import hydra.errors
from omegaconf import DictConfig, OmegaConf

from bench import registry
from bench.errors import UserError

log = logging.getLogger("bench.run")


def _instantiate(node: DictConfig, **extra):
    cfg = OmegaConf.to_container(node, resolve=True)
    cfg.pop("name", None)
    try:
        return hydra.utils.instantiate(cfg, **extra, _convert_="all")
    except hydra.errors.InstantiationException as exc:
        if isinstance(exc.__cause__, UserError):
            raise exc.__cause__ from None
        raise


def params_tag(alpha: float | None, params, defaults, max_steps: int | None = None) -> str:
    """Folder name of a run (and the tag of its row in the latency benchmark): alpha (None for a
    method that does not read it) + the method params that differ from its config file
    `defaults`, in the order of `params`, + a non-default step budget."""
    parts = [f"alpha={alpha:g}"] if alpha is not None else []
    for k, v in params.items():
        if k.startswith("_") or k == "name":
            continue
        if k not in defaults or defaults[k] != v:
            parts.append(f"{k}={v}")
    if max_steps is not None:
        parts.append(f"max_steps={max_steps}")
    return ",".join(parts) or "default"


def method_tag(cfg: DictConfig, method) -> str:
    """Folder name of a run: alpha (if the method reads it) + method params that differ from
    the method's config file + a non-default step budget."""
    defaults = OmegaConf.load(registry.CONFIG_DIR / "method" / f"{method_name(cfg)}.yaml")
    alpha = cfg.alpha if getattr(method, "uses_alpha", True) else None
    return params_tag(alpha, cfg.method, defaults, cfg.max_steps)


def parse_shard(shard) -> tuple[int, int] | None:
    """"i/n" -> (i, n) with 0 <= i < n, or None."""
    if shard in (None, ""):
        return None
    try:
        i, n = (int(x) for x in str(shard).split("/"))
    except ValueError:
        raise UserError(f"shard must look like i/n (e.g. 0/2), got {shard!r}") from None
    if not 0 <= i < n:
        raise UserError(f"shard {shard!r}: need 0 <= i < n")
    return i, n


def method_name(cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices["method"]


def build(cfg: DictConfig):
    """Validate and build suite, model, method; nothing is written here."""
    import torch
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    choices = hc.runtime.choices
    for group in ("model", "method", "suite"):
        registry.check(group, choices[group])
    if not (0 < float(cfg.alpha) <= 1):
        raise UserError(f"alpha must be in (0, 1], got {cfg.alpha}")
    if cfg.render not in ("on_demand", "every_step"):
        raise UserError(f"render must be on_demand or every_step, got {cfg.render!r}")
    threads = cfg.threads
    if threads is None and str(hc.mode) == "RunMode.MULTIRUN":
        threads = 1
    if threads:
        torch.set_num_threads(int(threads))

    shard = parse_shard(cfg.get("shard"))
    suite_cfg = OmegaConf.to_container(cfg.suite, resolve=True)
    if cfg.tasks is not None:
        suite_cfg["tasks"] = list(cfg.tasks) if not isinstance(cfg.tasks, int) else [cfg.tasks]
    suite = hydra.utils.instantiate(suite_cfg)
    task_ids = suite.task_ids()
    if shard is not None:
        task_ids = task_ids[shard[0]::shard[1]]
        if not task_ids:
            raise UserError(f"shard={cfg.shard} has no tasks: the run has "
                            f"{len(suite.task_ids())}")
    trials = int(cfg.trials or suite.trials_per_task)
    if trials < 1:
        raise UserError(f"trials must be >= 1, got {trials}")
    suite.check_available()
    n_init = min(suite.num_init_states(t) for t in task_ids)
    if cfg.init_offset + trials > n_init:
        raise UserError(f"{suite.name} has {n_init} fixed initial states per task; "
                        f"init_offset + trials = {cfg.init_offset + trials} is too many")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _instantiate(cfg.model)
    for w in caught:
        log.warning("%s", w.message)
        print(f"WARNING: {w.message}", file=sys.stderr)
    method = _instantiate(cfg.method, alpha=float(cfg.alpha))
    return suite, task_ids, trials, model, method, shard


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> dict:
    try:
        return _run(cfg)
    except UserError as exc:  # Hydra would print a traceback and exit 1
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def _run(cfg: DictConfig) -> dict:
    from hydra.core.hydra_config import HydraConfig

    from bench.policy import Policy
    from bench.results import RunStore, git_commit, machine_info, now_iso, package_versions
    from bench.runner import RunOptions, pending_episodes, run

    suite, task_ids, trials, model, method, shard = build(cfg)

    choices = HydraConfig.get().runtime.choices
    tag = method_tag(cfg, method)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else (
        Path(cfg.out_root) / model.name / suite.name / choices["method"] / tag)
    store = RunStore(run_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    model_info = model.describe()
    identity = {"model": resolved["model"], "weights_sha256": model_info.get("weights_sha256"),
                "method": resolved["method"],
                "alpha": cfg.alpha if getattr(method, "uses_alpha", True) else None,
                "suite": {k: v for k, v in resolved["suite"].items()
                          if k not in ("tasks", "trials_per_task")},
                "max_steps": cfg.max_steps}
    policy = Policy(model, method, count_flops=bool(cfg.count_flops))
    policy.reset(suite.instruction(task_ids[0]))  # sets the method up for this model
    manifest = {
        "model": model.name, "suite": suite.name, "method": choices["method"],
        "alpha": float(cfg.alpha) if getattr(method, "uses_alpha", True) else None,
        "method_params": {k: v for k, v in resolved["method"].items() if k != "_target_"},
        "tag": tag, "identity": identity, "config": resolved, "model_info": model_info,
        "git_commit": git_commit(), "packages": package_versions(),
        "machine": machine_info(cfg.device), "started": now_iso(),
        "method_scaled": method.scaled(),
    }
    if not store.try_lock("" if shard is None else f"-shard{shard[0]}of{shard[1]}"):
        print(f"{run_dir} is being run by another job (same config); skipping")
        return {"run_dir": str(run_dir), "written": 0}
    opts = RunOptions(trials=trials, seed=int(cfg.seed), max_steps=cfg.max_steps,
                      render=cfg.render, warmup=int(cfg.warmup),
                      save_queries=bool(cfg.save_queries), init_offset=int(cfg.init_offset),
                      save_frames=int(cfg.save_frames))
    store.write_manifest(manifest, pending=bool(pending_episodes(store, opts, task_ids)))
    t0 = time.perf_counter()
    written = run(suite, policy, store, opts, task_ids)
    wall = time.perf_counter() - t0
    from bench.summary import print_summary

    print_summary(store, run_dir, written, wall)
    return {"run_dir": str(run_dir), "written": len(written)}


def main() -> None:
    try:
        registry.check_argv(sys.argv[1:])
        hydra_main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
