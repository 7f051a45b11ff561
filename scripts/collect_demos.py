"""Collect scripted-expert demonstrations for one LIBERO suite (resumable).

    python -m scripts.collect_demos suite=libero_spatial inits=10-29 tasks=0-9 \
        image_every=3 camera_size=160 [seed=7] [root=data/demos]

One HDF5 per successful demo (bench/data/demos.py); every attempt is appended to
``{root}/{suite}/attempts.jsonl`` and skipped on a rerun, so rerunning the same command resumes.
Physics is run once: images are rendered only at the stored steps (t % image_every == 0).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from bench.data import demos as D

MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300,
             "libero_10": 520, "libero_90": 400}


def parse_range(s: str) -> list[int]:
    out: list[int] = []
    for part in str(s).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def parse_flag(value: str) -> bool:
    """A key=value switch: 1/true/yes (any case) is on, anything else off."""
    return str(value).strip().lower() in ("1", "true", "yes")


def parse_args(argv: list[str]) -> dict:
    cfg = {"suite": "libero_spatial", "inits": "10-29", "tasks": "0-9", "image_every": "3",
           "camera_size": "160", "seed": "7", "root": "data/demos", "max_steps": "",
           "hard_reset": "false"}
    for a in argv:
        if "=" not in a:
            raise SystemExit(f"expected key=value, got {a!r}")
        k, v = a.split("=", 1)
        k = k.lstrip("-").replace("-", "_")
        if k not in cfg:
            raise SystemExit(f"unknown option {k!r}; known: {', '.join(cfg)}")
        cfg[k] = v
    return cfg


def record_episode(env, expert_cls, init_state_idx: int, seed: int, image_every: int,
                   max_steps: int, render: bool = True) -> dict:
    """Run one expert episode, rendering only the stored frames. Returns arrays + success."""
    env.reset(init_state_idx, seed)
    expert = expert_cls(env)
    expert.reset()
    actions, proprio, image_steps, agent, wrist = [], [], [], [], []
    success = False
    for t in range(max_steps):
        a = np.asarray(expert.act(), dtype=np.float32)
        proprio.append(env.proprio())
        if render and t % image_every == 0:
            imgs = env.render()
            image_steps.append(t)
            agent.append(imgs["agentview"])
            wrist.append(imgs["robot0_eye_in_hand"])
        actions.append(a)
        if env.step(a):
            success = True
            break
    return {"success": success, "actions": np.array(actions), "proprio": np.array(proprio),
            "image_steps": np.array(image_steps, dtype=np.int32), "agentview": agent,
            "wrist": wrist}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    from tqdm import tqdm

    from bench.expert import EXPERT_VERSION, Expert
    from bench.suites.libero import LiberoEnv

    suite, root, seed = cfg["suite"], cfg["root"], int(cfg["seed"])
    image_every, camera_size = int(cfg["image_every"]), int(cfg["camera_size"])
    max_steps = int(cfg["max_steps"] or MAX_STEPS[suite])
    tasks, inits = parse_range(cfg["tasks"]), parse_range(cfg["inits"])
    done = D.attempted_keys(root, suite)
    todo = [(t, i) for t in tasks for i in inits if (t, i, seed) not in done]
    rows = D.read_attempts(root, suite)
    n_ok = sum(bool(r["success"]) for r in rows)
    n_all = len(rows)
    print(f"{suite}: {len(todo)} attempts to make, {len(tasks) * len(inits) - len(todo)} "
          f"already recorded", flush=True)
    bar = tqdm(total=len(todo), desc=suite, mininterval=5, file=sys.stdout)
    env, env_task = None, None
    for t, i in todo:
        if env_task != t:
            if env is not None:
                env.close()
            env = LiberoEnv(suite, t, camera_size=camera_size, max_steps=max_steps, render=True,
                            hard_reset=parse_flag(cfg["hard_reset"]))
            env_task = t
        t0 = time.time()
        try:
            ep = record_episode(env, Expert, i, seed, image_every, max_steps)
            error = None
        except Exception as exc:  # noqa: BLE001 - one bad episode must not kill the collection
            ep, error = {"success": False, "actions": np.zeros((0, 7))}, repr(exc)[:300]
        wall = time.time() - t0
        if ep["success"]:
            attrs = {"suite": suite, "task_id": t, "instruction": env.instruction,
                     "init_state_idx": i, "seed": seed, "camera_size": camera_size,
                     "image_every": image_every, "success": True,
                     "expert_version": EXPERT_VERSION}
            D.write_demo(D.demo_path(root, suite, t, i, seed), actions=ep["actions"],
                         proprio=ep["proprio"], image_steps=ep["image_steps"],
                         agentview=np.stack(ep["agentview"]), wrist=np.stack(ep["wrist"]),
                         attrs=attrs)
        row = {"task_id": t, "init_state_idx": i, "seed": seed, "success": bool(ep["success"]),
               "steps": int(len(ep["actions"])), "wall_s": round(wall, 2)}
        if error:
            row["error"] = error
        D.append_attempt(root, suite, row)
        n_all += 1
        n_ok += bool(ep["success"])
        bar.update(1)
        bar.set_postfix(ok=f"{n_ok}/{n_all}", task=t, init=i)
    bar.close()
    if env is not None:
        env.close()
    files = D.iter_demo_files(root, suite)
    if files:
        D.save_stats(D.compute_stats(files), os.path.join(root, suite, "stats.json"))
    print(f"{suite}: {len(files)} demos on disk, {n_ok}/{n_all} attempts successful", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
