"""Demonstration files: one HDF5 per successful episode, plus normalisation statistics.

Layout: ``{root}/{suite}/task{TT:02d}/demo_i{init:02d}_s{seed}.hdf5`` with

- root attrs: suite, task_id, instruction, init_state_idx, seed, camera_size, image_every,
  steps (N actions, wait steps excluded), success, expert_version
- ``actions`` (N, 7) float32 raw env actions (gripper exactly -1/+1)
- ``proprio`` (N, 8) float32, ``env.proprio()`` before each action
- ``image_steps`` (F,) int32, indices t into actions where images were rendered
  (t % image_every == 0, from 0)
- ``agentview`` / ``wrist`` (F, H, W, 3) uint8, ``env.render()`` before the action at t

Every attempt (successful or not) is appended to ``{root}/{suite}/attempts.jsonl`` so a
resumed collection skips it. ``stats.json`` holds per-dim q01/q99/mean/std/min/max.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np

ATTR_KEYS = ("suite", "task_id", "instruction", "init_state_idx", "seed", "camera_size",
             "image_every", "steps", "success", "expert_version")
ARRAY_KEYS = ("actions", "proprio", "image_steps", "agentview", "wrist")
STAT_KEYS = ("q01", "q99", "mean", "std", "min", "max")
EPS = 1e-8


def demo_path(root: str | Path, suite: str, task_id: int, init_state_idx: int, seed: int) -> Path:
    return (Path(root) / suite / f"task{task_id:02d}"
            / f"demo_i{init_state_idx:02d}_s{seed}.hdf5")


def write_demo(path: str | Path, *, actions, proprio, image_steps, agentview, wrist,
               attrs: dict) -> Path:
    """Atomically write one demo (``*.tmp`` then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    actions = np.asarray(actions, dtype=np.float32)
    proprio = np.asarray(proprio, dtype=np.float32)
    image_steps = np.asarray(image_steps, dtype=np.int32)
    agentview = np.asarray(agentview, dtype=np.uint8)
    wrist = np.asarray(wrist, dtype=np.uint8)
    n = len(actions)
    if actions.shape != (n, 7) or proprio.shape != (n, 8):
        raise ValueError(f"bad shapes: actions {actions.shape}, proprio {proprio.shape}")
    if not (len(image_steps) == len(agentview) == len(wrist)):
        raise ValueError("image_steps, agentview and wrist must have the same length")
    missing = [k for k in ATTR_KEYS if k not in attrs and k != "steps"]
    if missing:
        raise ValueError(f"missing attrs: {missing}")
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        f.attrs["steps"] = n
        f.create_dataset("actions", data=actions)
        f.create_dataset("proprio", data=proprio)
        f.create_dataset("image_steps", data=image_steps)
        for name, arr in (("agentview", agentview), ("wrist", wrist)):
            chunks = (1, *arr.shape[1:]) if len(arr) else None
            f.create_dataset(name, data=arr, chunks=chunks,
                             compression="lzf" if len(arr) else None)
    os.replace(tmp, path)
    return path


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def load_demo(path: str | Path, images: bool = True) -> dict:
    """Read one demo: the arrays (numpy) and the attrs (python scalars) in one dict."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            out[k] = _attr(v)
        for k in ARRAY_KEYS:
            if k in f and (images or k not in ("agentview", "wrist")):
                out[k] = f[k][()]
    return out


def iter_demo_files(root: str | Path, suites: str | Sequence[str]) -> list[Path]:
    """All finished demo files of the given suites, sorted (``*.tmp`` leftovers excluded)."""
    if isinstance(suites, str):
        suites = [suites]
    files: list[Path] = []
    for s in suites:
        files.extend(sorted((Path(root) / s).glob("task*/demo_*.hdf5")))
    return files


def _dim_stats(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    return {
        "q01": np.percentile(x, 1, axis=0).tolist(),
        "q99": np.percentile(x, 99, axis=0).tolist(),
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
        "min": x.min(0).tolist(),
        "max": x.max(0).tolist(),
    }


def compute_stats(paths: Iterable[str | Path]) -> dict:
    """Per-dim statistics of actions and proprio over all steps of all given demos."""
    acts, props, n = [], [], 0
    for p in paths:
        with h5py.File(p, "r") as f:
            acts.append(f["actions"][()])
            props.append(f["proprio"][()])
        n += 1
    if not n:
        raise ValueError("compute_stats: no demo files")
    a, q = np.concatenate(acts), np.concatenate(props)
    return {"actions": _dim_stats(a), "proprio": _dim_stats(q), "num_demos": n,
            "num_steps": int(len(a))}


def save_stats(stats: dict, path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(stats, indent=1))
    os.replace(tmp, path)


def load_stats(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def _lohi(stats: dict, key: str):
    s = stats[key] if key in stats else stats
    return np.asarray(s["q01"], dtype=np.float64), np.asarray(s["q99"], dtype=np.float64)


def normalize_actions(a, stats: dict) -> np.ndarray:
    """Dims 0..5 to [-1, 1] by q01/q99 (clipped); dim 6 (gripper) unchanged."""
    a = np.asarray(a, dtype=np.float64)
    lo, hi = _lohi(stats, "actions")
    out = a.copy()
    out[..., :6] = np.clip(2 * (a[..., :6] - lo[:6]) / (hi[:6] - lo[:6] + EPS) - 1, -1, 1)
    return out.astype(np.float32)


def unnormalize_actions(a, stats: dict) -> np.ndarray:
    """Inverse of `normalize_actions`; the gripper becomes exactly -1/+1 (its sign, 0 -> -1)."""
    a = np.asarray(a, dtype=np.float64)
    lo, hi = _lohi(stats, "actions")
    out = a.copy()
    out[..., :6] = (np.clip(a[..., :6], -1, 1) + 1) / 2 * (hi[:6] - lo[:6] + EPS) + lo[:6]
    out[..., 6] = np.where(a[..., 6] > 0, 1.0, -1.0)
    return out.astype(np.float32)


def normalize_proprio(p, stats: dict) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    lo, hi = _lohi(stats, "proprio")
    return np.clip(2 * (p - lo) / (hi - lo + EPS) - 1, -1, 1).astype(np.float32)


def unnormalize_proprio(p, stats: dict) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    lo, hi = _lohi(stats, "proprio")
    return ((np.clip(p, -1, 1) + 1) / 2 * (hi - lo + EPS) + lo).astype(np.float32)


# --- attempts log (resume) -------------------------------------------------------------------

def attempts_path(root: str | Path, suite: str) -> Path:
    return Path(root) / suite / "attempts.jsonl"


def read_attempts(root: str | Path, suite: str) -> list[dict]:
    p = attempts_path(root, suite)
    if not p.exists():
        return []
    rows = []
    for line in p.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: ignore it
            continue
    return rows


def attempted_keys(root: str | Path, suite: str) -> set[tuple[int, int, int]]:
    return {(int(r["task_id"]), int(r["init_state_idx"]), int(r["seed"]))
            for r in read_attempts(root, suite)}


def append_attempt(root: str | Path, suite: str, row: dict) -> None:
    p = attempts_path(root, suite)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
