"""The episode loop: reset to a fixed initial state, query the policy when its chunk runs out,
step the physics, record. Cameras are rendered only when someone looks (render on demand)."""

from __future__ import annotations

import time
import traceback
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from bench.policy import Policy
from bench.results import RunStore, episode_id
from bench.suites.base import Env, Observation, Suite


@dataclass
class RunOptions:
    trials: int  # per task: trial i starts from fixed initial state i
    seed: int = 7
    max_steps: int | None = None  # None: the suite's budget
    render: str = "on_demand"  # or "every_step" (renders every step; same physics)
    warmup: int = 3  # policy queries run and discarded before the first episode
    save_queries: bool = True
    init_offset: int = 0  # first initial state (trial i uses init_offset + i)
    save_frames: int = 0  # save every query's camera frames + kept tokens of this many episodes


def _percentile(x: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(x), q)) if x else float("nan")


def summarise_queries(queries: list[dict]) -> dict:
    """Episode-level summary of its policy queries."""
    lat = [q["latency_ms"] for q in queries]
    stages = {k: float(np.median([q["stages"][k] for q in queries])) for k in
              (queries[0]["stages"] if queries else {})}
    kept = np.array([q["kept_per_layer"] for q in queries], dtype=float) if queries else None
    out = {
        "latency_ms": {"median": _percentile(lat, 50), "mean": float(np.mean(lat)) if lat
                       else float("nan"), "p90": _percentile(lat, 90), "n": len(lat),
                       "stages_median": stages},
        "tokens": {"visual_total": queries[0]["visual_total"] if queries else None,
                   "visual_kept_mean": float(kept.mean()) if kept is not None else None,
                   "kept_per_layer_mean": kept.mean(0).tolist() if kept is not None else None},
    }
    if queries and "flops_total" in queries[0]:
        out["flops"] = {k + "_mean": float(np.mean([q["flops_" + k] for q in queries]))
                        for k in ("decoder", "method", "total")}
    return out


class GoalTracker:
    """Which conjuncts of a task's goal an episode reached: `initial` (true at the first check,
    the first policy query: a drawer that starts closed already satisfies "close the drawer"),
    `ever` (true at any checked state) and `final` (true at the last state). Checked at every
    policy query and at the end, so a sub-goal met and undone between two queries can go unseen
    (cheap: no physics, no render). `achieved_count`: conjuncts false at the start and true at
    the end; `open_count`: conjuncts false at the start."""

    def __init__(self) -> None:
        self.initial: list[bool] | None = None
        self.ever: list[bool] | None = None
        self.final: list[bool] | None = None

    def update(self, status: list[bool] | None) -> None:
        if status is None:
            return
        status = [bool(x) for x in status]
        if self.initial is None:
            self.initial = status
        self.ever = status if self.ever is None else [a or b for a, b in
                                                       zip(self.ever, status, strict=True)]
        self.final = status

    def summary(self) -> dict | None:
        """{"n", "initial", "ever", "final", "ever_count", "final_count", "open_count",
        "achieved_count"} or None when nothing was checked."""
        if self.ever is None:
            return None
        pairs = list(zip(self.initial, self.final, strict=True))
        return {"n": len(self.ever), "initial": self.initial, "ever": self.ever,
                "final": self.final, "ever_count": sum(self.ever),
                "final_count": sum(self.final), "open_count": sum(not i for i, _ in pairs),
                "achieved_count": sum(f and not i for i, f in pairs)}


def run_episode(env: Env, policy: Policy, task_id: int, init_state_idx: int, opts: RunOptions,
                max_steps: int, store: RunStore | None = None) -> tuple[dict, list[dict]]:
    """One episode; with `store`, every query's frames and kept tokens are saved to it."""
    seed = opts.seed
    torch.manual_seed(seed)
    np.random.seed(seed)
    t_start = time.perf_counter()
    env.reset(init_state_idx, seed)
    policy.reset(env.instruction)
    queries: list[dict] = []
    chunk: deque = deque()
    max_back = int(getattr(policy.method, "max_frame_back", 0))
    snaps: deque = deque(maxlen=max(max_back, 1))  # snaps[-b]: state b steps back
    renders = 0
    success, steps = False, max_steps
    sim_s = 0.0
    goals = GoalTracker()
    for step in range(max_steps):
        if opts.render == "every_step":
            images = env.render()
            renders += 1
        if not chunk:
            if opts.render != "every_step":
                images = env.render()
                renders += 1
            past = {}
            for back in policy.frames_needed():
                back = min(int(back), step, len(snaps))  # clamp to frames that exist
                if back == 0:
                    past[0] = images
                elif back not in past:
                    past[back] = env.render_snapshot(snaps[-back])
                    renders += 1
            goals.update(env.goal_status())
            obs = Observation(images=images, proprio=env.proprio())
            actions, rec = policy(obs, step, past)
            rec["episode_id"] = episode_id(task_id, init_state_idx, seed)
            if store is not None:  # outside the timed call
                store.save_query_frames(rec["episode_id"], len(queries), images,
                                        rec.get("kept_visual_idx"), policy.layout)
            queries.append(rec)
            chunk.extend(actions)
        if max_back:
            snaps.append(env.snapshot())
        t0 = time.perf_counter()
        done = env.step(chunk.popleft())
        sim_s += time.perf_counter() - t0
        if done:
            success, steps = True, step + 1
            break
    goals.update(env.goal_status())
    rec = {
        "success": success, "steps": steps, "max_steps": max_steps, "n_queries": len(queries),
        "goals": goals.summary(),
        "renders": renders, "wall_s": time.perf_counter() - t_start, "sim_step_s": sim_s,
        **summarise_queries(queries),
    }
    ms = [q["method"] for q in queries if q.get("method")]
    rec["method_stats"] = summarise_method(ms)
    return rec, queries


def summarise_method(stats: list[dict]) -> dict:
    """Per-episode method facts: means of numeric fields, the sequence of `mode`s."""
    if not stats:
        return {}
    out: dict = {}
    keys = {k for s in stats for k in s}
    for k in sorted(keys):
        vals = [s[k] for s in stats if k in s]
        if all(isinstance(v, bool) for v in vals):
            out[k + "_frac"] = float(np.mean(vals))
        elif all(isinstance(v, int | float) for v in vals):
            vals = [v for v in vals if v == v]  # drop NaN
            out[k + "_mean"] = float(np.mean(vals)) if vals else None
        elif k == "mode":
            out["modes"] = vals
            out["fine_frac"] = float(np.mean([v == "fine" for v in vals]))
    return out


def warm_up(policy: Policy, env: Env, n: int, seed: int) -> None:
    """Run `n` discarded queries on a real first observation (caches, allocator, threads)."""
    if n <= 0:
        return
    env.reset(0, seed)
    policy.reset(env.instruction)
    obs = env.observe()
    for _ in range(n):
        policy(obs, 0, {0: obs.images})


def pending_episodes(store: RunStore, opts: RunOptions, task_ids: list[int]
                     ) -> list[tuple[int, int]]:
    """(task, initial state) pairs of the run not yet recorded in `store`."""
    done = store.finished()
    return [(t, opts.init_offset + i) for t in task_ids for i in range(opts.trials)
            if episode_id(t, opts.init_offset + i, opts.seed) not in done]


def run(suite: Suite, policy: Policy, store: RunStore, opts: RunOptions,
        task_ids: list[int]) -> list[dict]:
    """Run every (task, trial) not yet in `store`; return the episode records written now."""
    todo = pending_episodes(store, opts, task_ids)
    written: list[dict] = []
    n_total = len(task_ids) * opts.trials
    bar = tqdm(total=n_total, initial=n_total - len(todo), unit="ep", dynamic_ncols=True)
    successes = 0
    warmed = False
    max_steps = opts.max_steps or suite.max_steps
    for task_id in sorted({t for t, _ in todo}):
        inits = [i for t, i in todo if t == task_id]
        env = None
        try:
            env = suite.make_env(task_id)
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            err = f"{type(exc).__name__}: {exc}"
        for init in inits:
            base = {"episode_id": episode_id(task_id, init, opts.seed), "suite": suite.name,
                    "task_id": task_id, "instruction": suite.instruction(task_id),
                    "init_state_idx": init, "seed": opts.seed}
            queries: list[dict] = []
            if env is None:
                rec = {**base, "status": "error", "error": err, "success": False}
            else:
                try:
                    if not warmed:
                        warm_up(policy, env, opts.warmup, opts.seed)
                        warmed = True
                    keep_frames = (opts.save_frames > 0
                                   and store.n_frame_episodes() < opts.save_frames)
                    body, queries = run_episode(env, policy, task_id, init, opts, max_steps,
                                                store if keep_frames else None)
                    rec = {**base, "status": "ok", "error": None, **body}
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    tb = traceback.format_exc(limit=3)
                    rec = {**base, "status": "error", "error": f"{type(exc).__name__}: {exc}",
                           "traceback": tb, "success": False}
            if opts.save_queries:
                store.append_queries(queries)
            store.append_episode(rec)
            written.append(rec)
            successes += bool(rec["success"])
            ok = sum(r["status"] == "ok" for r in written)
            bar.set_postfix(sr=f"{successes}/{ok}", err=len(written) - ok)
            bar.update(1)
        if env is not None:
            env.close()
    bar.close()
    return written
