"""The evaluation campaign: every method on the LIBERO suites plus SpecPrune's ablations.

    python -m scripts.campaign                      # everything, 2 parallel jobs, resumable
    python -m scripts.campaign stages=[main] suites=[libero_spatial] trials=10 workers=2
    python -m scripts.campaign dry_run=true         # print the commands only

Each run is one `python -m bench.run ...` (results under results/runs/, resumed when rerun),
so killing the campaign and starting it again loses at most the episodes in flight. Runs are
grouped in waves; a wave starts when the previous one is done: SpecPrune at alpha 0.8 runs
before FastV / DivPrune / EfficientVLA on the same suite, because they match its mean kept
token count (`keep: match_specprune`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import OmegaConf

from bench.ablations import ALPHAS, SWITCHES

DEFAULTS = {
    "stages": ["main", "ablations"],
    "suites": ["libero_spatial", "libero_object", "libero_goal", "libero_10"],
    "ablation_suite": "libero_spatial",
    "trials": 10,
    "workers": 2,
    "threads": 1,
    "dry_run": False,
    "log_dir": "results/campaign_logs",
    "extra": [],  # extra overrides for every run, e.g. ["tasks=[0,1]"]
}


def waves(cfg) -> list[list[list[str]]]:
    """Lists of bench.run argument lists; runs within a wave are independent."""
    base = [f"trials={cfg.trials}", f"threads={cfg.threads}", *cfg.extra]
    out: list[list[list[str]]] = []
    if "main" in cfg.stages:
        out.append([["method=none", f"suite={s}", *base] for s in cfg.suites]
                   + [["method=specprune", "alpha=0.8", f"suite={s}", *base] for s in cfg.suites])
        out.append([[f"method={m}", "alpha=0.8", f"suite={s}", *base] for s in cfg.suites
                    for m in ("fastv", "divprune", "sparsevlm", "vla_cache", "efficientvla")])
    if "ablations" in cfg.stages:
        s = cfg.ablation_suite
        runs = [["method=specprune", f"alpha={a}", f"suite={s}", *base] for a in ALPHAS]
        runs += [["method=specprune", "alpha=0.8", f"suite={s}",
                  *[f"method.{o}" for o in abl], *base] for abl in SWITCHES]
        out.append(runs)
    return out


def run_one(args: list[str], log_dir: Path) -> tuple[list[str], int, float]:
    name = "_".join(a.replace("/", "-").replace("=", "-") for a in args if "trials" not in a
                    and "threads" not in a)[:150]
    log_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(log_dir / f"{name}.log", "a") as log:
        rc = subprocess.call([sys.executable, "-m", "bench.run", *args], stdout=log,
                             stderr=subprocess.STDOUT)
    return args, rc, time.time() - t0


def main(argv: list[str]) -> None:
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__.strip() + "\n\noptions (key=value) and defaults:")
        for k, v in DEFAULTS.items():
            print(f"  {k}={v}")
        return
    bad = [a for a in argv if "=" not in a or a.split("=", 1)[0] not in DEFAULTS]
    if bad:
        sys.exit(f"campaign: unknown argument(s) {bad}; options are key=value with keys "
                 f"{', '.join(DEFAULTS)} (python -m scripts.campaign --help)")
    cfg = OmegaConf.merge(OmegaConf.create(DEFAULTS), OmegaConf.from_dotlist(argv))
    plan = waves(cfg)
    n = sum(len(w) for w in plan)
    print(f"campaign: {n} runs in {len(plan)} waves, {cfg.workers} in parallel")
    failed = 0
    for i, wave in enumerate(plan):
        print(f"wave {i + 1}/{len(plan)}: {len(wave)} runs", flush=True)
        if cfg.dry_run:
            for args in wave:
                print("  python -m bench.run " + " ".join(args))
            continue
        with ThreadPoolExecutor(cfg.workers) as pool:
            for args, rc, secs in pool.map(lambda a: run_one(a, Path(cfg.log_dir)), wave):
                status = "ok" if rc == 0 else f"FAILED rc={rc}"
                failed += rc != 0
                print(f"  [{status}] {secs / 60:.1f} min  bench.run {' '.join(args)}", flush=True)
    if failed:
        sys.exit(f"{failed} run(s) failed; see {cfg.log_dir}/")


if __name__ == "__main__":
    main(sys.argv[1:])
