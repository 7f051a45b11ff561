"""Measure LIBERO step costs on this machine: rendered vs physics-only steps, and reset costs.

    python -m bench.envbench --suite libero_spatial --task 0 --steps 40
    python -m bench.envbench --resets 6 --out results/envbench/resets.csv   # reset modes only

Runs real episodes from fixed initial states with random actions (no policy yet: the
embedded model and runner land with issue 2's remaining parts) and prints a results table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from bench.suites.libero import LIBERO_SUITES, LiberoEnv


def measure(suite: str, task: int, steps: int, camera_size: int, query_every: int) -> pd.DataFrame:
    env = LiberoEnv(suite, task, camera_size=camera_size, max_steps=steps)
    rows = []
    try:
        for mode, every in [("render every step", 1), (f"render on demand (1/{query_every})",
                                                       query_every), ("physics only", 0)]:
            env.reset(0, seed=7)
            rng = np.random.default_rng(0)
            t0 = time.perf_counter()
            render_s = 0.0
            for i in range(steps):
                if every and i % every == 0:
                    r0 = time.perf_counter()
                    env.render()
                    render_s += time.perf_counter() - r0
                env.step(np.clip(rng.normal(0, 0.3, 7), -1, 1))
            total = time.perf_counter() - t0
            rows.append({"mode": mode, "steps": steps, "ms_per_step": 1000 * total / steps,
                         "render_share_%": 100 * render_s / total if total else 0.0})
    finally:
        env.close()
    df = pd.DataFrame(rows)
    base = df.loc[0, "ms_per_step"]
    df["speedup_vs_render_every_step"] = base / df["ms_per_step"]
    return df


RESET_MODES = (
    ("hard, full rebuild (LIBERO)", {"hard_reset": True, "reuse_sim": False}),
    ("hard, simulator reused (default)", {"hard_reset": True, "reuse_sim": True}),
    ("soft (hard_reset=False)", {"hard_reset": False}),
)


def measure_resets(suite: str, task: int, n: int, camera_size: int) -> pd.DataFrame:
    """Median seconds of `LiberoEnv.reset` (initial states 0..n-1, 10 wait steps included) in
    each reset mode; the first reset after construction is not counted."""
    rows = []
    for mode, kwargs in RESET_MODES:
        env = LiberoEnv(suite, task, camera_size=camera_size, max_steps=10, **kwargs)
        try:
            env.reset(0, seed=7)
            times = []
            for i in range(n):
                t0 = time.perf_counter()
                env.reset(i % env.num_init_states(), seed=7)
                times.append(time.perf_counter() - t0)
        finally:
            env.close()
        rows.append({"mode": mode, "resets": n, "median_s": float(np.median(times)),
                     "max_s": float(np.max(times))})
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--suite", default="libero_spatial", choices=LIBERO_SUITES)
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--camera-size", type=int, default=160)
    p.add_argument("--query-every", type=int, default=8, help="policy chunk length")
    p.add_argument("--resets", type=int, default=0,
                   help="measure this many resets per reset mode instead of step costs")
    p.add_argument("--out", default=None, help="also write the table to this CSV file")
    a = p.parse_args()
    if a.resets:
        df = measure_resets(a.suite, a.task, a.resets, a.camera_size)
        title = f"LIBERO {a.suite} task {a.task}: reset() cost, {a.resets} resets a mode"
    else:
        df = measure(a.suite, a.task, a.steps, a.camera_size, a.query_every)
        title = f"LIBERO {a.suite} task {a.task}, two cameras at {a.camera_size}px, {a.steps} steps"
    if a.out:
        from pathlib import Path

        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(a.out, index=False)
    print("\n" + title)
    print(df.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
