"""The table printed at the end of a run, from the run's results file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.stats import wilson_interval


def summary_frame(episodes: list[dict]) -> pd.DataFrame:
    """One row per task plus `all`: episodes, successes, success % [Wilson 95%], latency, FLOPs,
    visual tokens kept, errors; for goals of several conjuncts (libero_10's two-step tasks), the
    conjuncts that held at the end of the episode, summed over episodes."""
    rows = []
    ok = [e for e in episodes if e.get("status") == "ok"]
    groups = sorted({e["task_id"] for e in episodes})
    for key in groups + ["all"]:
        eps = [e for e in ok if key == "all" or e["task_id"] == key]
        errs = sum(1 for e in episodes if e.get("status") != "ok"
                   and (key == "all" or e["task_id"] == key))
        n, k = len(eps), sum(bool(e["success"]) for e in eps)
        lo, hi = wilson_interval(k, n) if n else (float("nan"), float("nan"))
        lat = [e["latency_ms"]["median"] for e in eps if e.get("latency_ms", {}).get("n")]
        fl = [e["flops"]["total_mean"] for e in eps if "flops" in e]
        kept = [e["tokens"]["visual_kept_mean"] for e in eps if e.get("tokens")]
        total = next((e["tokens"]["visual_total"] for e in eps if e.get("tokens")), None)
        goals = [e["goals"] for e in eps if e.get("goals")]
        row_goals = {}
        if any(g["n"] > 1 for g in goals):  # multi-step goals: partial progress
            row_goals = {"sub-goals reached (end)":
                         f"{sum(g['final_count'] for g in goals)}/{sum(g['n'] for g in goals)}"}
            if all("open_count" in g for g in goals):  # false at the start, true at the end
                row_goals["sub-goals achieved / open"] = (
                    f"{sum(g['achieved_count'] for g in goals)}/"
                    f"{sum(g['open_count'] for g in goals)}")
        rows.append({
            "task": key, "episodes": n, "success": k, **row_goals,
            "SR % [95% CI]": f"{100 * k / n:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]" if n else "-",
            "errors": errs,
            "latency ms (median)": f"{np.median(lat):.1f}" if lat else "-",
            "GFLOPs/query": f"{np.mean(fl) / 1e9:.2f}" if fl else "-",
            "visual kept": f"{np.mean(kept):.0f}/{total}" if kept else "-",
        })
    df = pd.DataFrame(rows)
    for col in ("sub-goals reached (end)", "sub-goals achieved / open"):
        if col in df:
            df[col] = df[col].fillna("-")
    return df


def stage_line(episodes: list[dict]) -> str:
    ok = [e for e in episodes if e.get("status") == "ok" and e.get("latency_ms", {}).get("n")]
    if not ok:
        return ""
    st = {k: np.median([e["latency_ms"]["stages_median"][k] for e in ok])
          for k in ok[0]["latency_ms"]["stages_median"]}
    return "latency stages (median ms): " + ", ".join(f"{k} {v:.1f}" for k, v in st.items())


def print_summary(store, run_dir: Path, written: list[dict], wall_s: float) -> None:
    episodes = store.episodes()
    print(f"\nresults: {run_dir}/episodes.jsonl ({len(episodes)} episodes, "
          f"{len(written)} run now)")
    if not episodes:
        return
    print(summary_frame(episodes).to_markdown(index=False))
    line = stage_line(episodes)
    if line:
        print(line)
    if written and wall_s > 0:
        print(f"this run: {len(written)} episodes in {wall_s:.0f} s = "
              f"{3600 * len(written) / wall_s:.0f} episodes/hour")
