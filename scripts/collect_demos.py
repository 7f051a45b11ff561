"""Collect scripted-expert demonstrations for one LIBERO suite (resumable).

    python -m scripts.collect_demos suite=libero_spatial inits=10-29 tasks=0-9 \
        image_every=3 camera_size=160 [seed=7] [root=data/demos]

One HDF5 per successful demo (bench/data/demos.py); every attempt is appended to
``{root}/{suite}/attempts.jsonl`` and skipped on a rerun, so rerunning the same command resumes.
Physics is run once: images are rendered only at the stored steps (t % image_every == 0).

Recovery demonstrations (DART-style, Laskey et al. 2017): `action_noise=S` adds temporally
correlated Gaussian noise (AR(1), per-step correlation `noise_rho`, stationary std S in
normalised action units) to the translation and rotation the robot *executes*, while the demo
stores the expert's own action at each step as the label. The expert is closed-loop (it reads
the simulator state every step), so the demos show it correcting the drift the noise causes:
the states a policy's own errors lead to, with the action that recovers. Noisy demos go to
their own root (default ``data/demos_noise{S}``) so they never overwrite clean ones; train on
both with ``demos=[data/demos,data/demos_noise0.3]``.
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
           "camera_size": "160", "seed": "7", "root": "", "max_steps": "",
           "hard_reset": "false", "action_noise": "0", "noise_rho": "0.9"}
    for a in argv:
        if "=" not in a:
            raise SystemExit(f"expected key=value, got {a!r}")
        k, v = a.split("=", 1)
        k = k.lstrip("-").replace("-", "_")
        if k not in cfg:
            raise SystemExit(f"unknown option {k!r}; known: {', '.join(cfg)}")
        cfg[k] = v
    return cfg


NOISE_DIMS = slice(0, 6)  # translation + rotation; the gripper command is never perturbed


def noise_rng(seed: int, task_id: int, init_state_idx: int) -> np.random.Generator:
    """The noise of one attempt: the same for a rerun of the same (seed, task, init)."""
    return np.random.default_rng([int(seed), int(task_id), int(init_state_idx)])


def record_episode(env, expert_cls, init_state_idx: int, seed: int, image_every: int,
                   max_steps: int, render: bool = True, action_noise: float = 0.0,
                   noise_rho: float = 0.9, rng: np.random.Generator | None = None) -> dict:
    """Run one expert episode, rendering only the stored frames. Returns arrays + success.
    With action_noise > 0 the executed action is the expert's plus AR(1) noise on NOISE_DIMS
    (clipped to [-1, 1]); `actions` holds the expert's actions (the labels) either way."""
    env.reset(init_state_idx, seed)
    expert = expert_cls(env)
    expert.reset()
    actions, proprio, image_steps, agent, wrist = [], [], [], [], []
    success = False
    if action_noise > 0 and rng is None:
        raise ValueError("record_episode: action_noise needs an rng (noise_rng(...))")
    n_dims = NOISE_DIMS.stop - NOISE_DIMS.start
    noise = np.zeros(n_dims)
    innov = action_noise * np.sqrt(1.0 - noise_rho ** 2)
    for t in range(max_steps):
        a = np.asarray(expert.act(), dtype=np.float32)
        proprio.append(env.proprio())
        if render and t % image_every == 0:
            imgs = env.render()
            image_steps.append(t)
            agent.append(imgs["agentview"])
            wrist.append(imgs["robot0_eye_in_hand"])
        actions.append(a)
        executed = a
        if action_noise > 0:
            noise = (noise_rho * noise + innov * rng.standard_normal(n_dims) if t else
                     action_noise * rng.standard_normal(n_dims))
            executed = a.copy()
            executed[NOISE_DIMS] = np.clip(a[NOISE_DIMS] + noise, -1.0, 1.0)
        if env.step(executed):
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

    suite, seed = cfg["suite"], int(cfg["seed"])
    action_noise, noise_rho = float(cfg["action_noise"]), float(cfg["noise_rho"])
    if action_noise < 0 or not 0 <= noise_rho < 1:
        raise SystemExit("need action_noise >= 0 and 0 <= noise_rho < 1")
    root = cfg["root"] or ("data/demos" if action_noise == 0 else
                           f"data/demos_noise{action_noise:g}")
    other = {float(r.get("action_noise", 0.0)) for r in D.read_attempts(root, suite)}
    if other - {action_noise}:
        raise SystemExit(f"{root}/{suite} holds attempts with action_noise {sorted(other)}; "
                         f"collect action_noise={action_noise:g} into another root= (noisy and "
                         "clean demos of the same initial state would share a file name)")
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
            ep = record_episode(env, Expert, i, seed, image_every, max_steps,
                                action_noise=action_noise, noise_rho=noise_rho,
                                rng=noise_rng(seed, t, i) if action_noise > 0 else None)
            error = None
        except Exception as exc:  # noqa: BLE001 - one bad episode must not kill the collection
            ep, error = {"success": False, "actions": np.zeros((0, 7))}, repr(exc)[:300]
        wall = time.time() - t0
        if ep["success"]:
            attrs = {"suite": suite, "task_id": t, "instruction": env.instruction,
                     "init_state_idx": i, "seed": seed, "camera_size": camera_size,
                     "image_every": image_every, "success": True,
                     "expert_version": EXPERT_VERSION}
            if action_noise > 0:
                attrs |= {"action_noise": action_noise, "noise_rho": noise_rho}
            D.write_demo(D.demo_path(root, suite, t, i, seed), actions=ep["actions"],
                         proprio=ep["proprio"], image_steps=ep["image_steps"],
                         agentview=np.stack(ep["agentview"]), wrist=np.stack(ep["wrist"]),
                         attrs=attrs)
        row = {"task_id": t, "init_state_idx": i, "seed": seed, "success": bool(ep["success"]),
               "steps": int(len(ep["actions"])), "wall_s": round(wall, 2)}
        if action_noise > 0:
            row["action_noise"] = action_noise
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
