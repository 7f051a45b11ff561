"""Read the results files: run folders (manifest + episodes) and latency-benchmark output.

Nothing here computes a metric; it only turns files into `Run` / `LatencyBench` objects
with tidy pandas frames. Unreadable lines or files are skipped with a warning on stderr,
never silently.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

# Tag strings that mean "no overrides" (a folder name cannot be empty).
DEFAULT_TAGS = {"", "default", "defaults", "base"}

# Tasks per suite, for telling a finished run from one still going (Run.partial).
SUITE_TASKS = {"libero_spatial": 10, "libero_object": 10, "libero_goal": 10, "libero_10": 10,
               "libero_90": 90}

# Episode pairing key: the same task, initial state and seed.
PAIR_KEY = ("task_id", "init_state_idx", "seed")

EPISODE_COLUMNS = [
    "episode_id", "task_id", "instruction", "init_state_idx", "seed", "status", "error", "success", "steps",
    "max_steps", "n_queries", "latency_median_ms", "latency_n", "stage_vision_ms",
    "stage_decoder_ms", "stage_head_ms", "stage_method_ms", "flops_decoder", "flops_total",
    "visual_total", "visual_kept_mean", "kept_after_static", "fine_frac", "recall_mean",
    "modes", "wall_s", "goals_n", "goals_final", "goals_ever", "goals_open", "goals_achieved",
]


def warn(msg: str) -> None:
    print(f"[report] warning: {msg}", file=sys.stderr)


def parse_value(text: str) -> Any:
    """'true' -> True, '0.8' -> 0.8, '60' -> 60, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text.strip()


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside brackets: 'a=[1, 2],b=3' -> ['a=[1, 2]', 'b=3']."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_tag(tag: str) -> dict[str, Any]:
    """'alpha=0.8,static=true' -> {'alpha': 0.8, 'static': True}; 'default' -> {}.

    A token without '=' is kept as {token: True}, so it still counts as an override.
    """
    if tag.strip().lower() in DEFAULT_TAGS:
        return {}
    out: dict[str, Any] = {}
    for token in split_top_level(tag):
        token = token.strip()
        if not token:
            continue
        key, sep, value = token.partition("=")
        out[key.strip()] = parse_value(value) if sep else True
    return out


def _get(d: Any, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _num(x: Any) -> float:
    try:
        return float(x) if x is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def episode_row(ep: dict[str, Any]) -> dict[str, Any]:
    """Flatten one episodes.jsonl object into the columns of EPISODE_COLUMNS."""
    kept_per_layer = _get(ep, "tokens", "kept_per_layer_mean") or []
    stages = _get(ep, "latency_ms", "stages_median") or {}
    method_stats = ep.get("method_stats") or {}
    return {
        "episode_id": ep.get("episode_id"),
        "task_id": ep.get("task_id"),
        "instruction": ep.get("instruction"),
        "init_state_idx": ep.get("init_state_idx"),
        "seed": ep.get("seed"),
        "status": ep.get("status", "ok"),
        "error": ep.get("error"),
        "success": bool(ep.get("success", False)),
        "steps": ep.get("steps"),
        "max_steps": ep.get("max_steps"),
        "n_queries": ep.get("n_queries"),
        "latency_median_ms": _num(_get(ep, "latency_ms", "median")),
        "latency_n": _num(_get(ep, "latency_ms", "n")),
        "stage_vision_ms": _num(stages.get("vision")),
        "stage_decoder_ms": _num(stages.get("decoder")),
        "stage_head_ms": _num(stages.get("head")),
        "stage_method_ms": _num(stages.get("method")),
        "flops_decoder": _num(_get(ep, "flops", "decoder_mean")),
        "flops_total": _num(_get(ep, "flops", "total_mean")),
        "visual_total": _num(_get(ep, "tokens", "visual_total")),
        "visual_kept_mean": _num(_get(ep, "tokens", "visual_kept_mean")),
        # Static pruning acts after layer 1, so layer 2 shows what it kept (paper Table 8).
        "kept_after_static": _num(kept_per_layer[2]) if len(kept_per_layer) > 2 else math.nan,
        "fine_frac": _num(method_stats.get("fine_frac")),
        "recall_mean": _num(method_stats.get("recall_mean")),
        "modes": method_stats.get("modes"),
        "wall_s": _num(ep.get("wall_s")),
        # conjuncts of the task's goal, and how many held at the end / at any policy query
        "goals_n": _num(_get(ep, "goals", "n")),
        "goals_final": _num(_get(ep, "goals", "final_count")),
        "goals_ever": _num(_get(ep, "goals", "ever_count")),
        # false at the start / false at the start and true at the end (recorded since the
        # runner kept the initial status)
        "goals_open": _num(_get(ep, "goals", "open_count")),
        "goals_achieved": _num(_get(ep, "goals", "achieved_count")),
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Objects of a JSON-lines file; a broken line (e.g. a crash mid-write) is skipped."""
    out = []
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                warn(f"{path}:{lineno}: not valid JSON, skipped")
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def read_episodes(path: Path) -> pd.DataFrame:
    rows = [episode_row(ep) for ep in read_jsonl(path)] if path.exists() else []
    df = pd.DataFrame(rows, columns=EPISODE_COLUMNS)
    if df.empty:
        return df
    dup = df["episode_id"].duplicated(keep="last")
    if dup.any():
        warn(f"{path}: {int(dup.sum())} repeated episode_id(s); the last record of each is used")
        df = df[~dup]
    df["ok"] = df["status"] == "ok"
    return df.reset_index(drop=True)


@dataclass
class Run:
    """One run folder: results/runs/{model}/{suite}/{method}/{tag}/."""

    path: Path
    model: str
    suite: str
    method: str
    tag: str
    manifest: dict[str, Any]
    episodes: pd.DataFrame
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def alpha(self) -> float | None:
        value = self.manifest.get("alpha", self.overrides.get("alpha"))
        return None if value is None else float(value)

    @property
    def default_params(self) -> bool:
        """True when the tag overrides nothing but alpha: the method's default settings."""
        return set(self.overrides) <= {"alpha"}

    def param(self, key: str, default: Any = None) -> Any:
        """A method hyper-parameter: the tag's override, else the manifest, else `default`."""
        if key in self.overrides:
            return self.overrides[key]
        params = self.manifest.get("method_params") or {}
        return params.get(key, default)

    @property
    def expected_episodes(self) -> int | None:
        """Episodes the run was started for: trials x tasks from its manifest (all of the
        suite's tasks when it names none); None when that cannot be told."""
        cfg = self.manifest.get("config") or {}
        trials = cfg.get("trials") or (cfg.get("suite") or {}).get("trials_per_task")
        tasks = cfg.get("tasks")
        n_tasks = len(tasks) if isinstance(tasks, list) else SUITE_TASKS.get(self.suite)
        if not trials or not n_tasks:
            return None
        return int(trials) * n_tasks

    @property
    def partial(self) -> bool:
        """Fewer episodes recorded (ok or error) than the run was started for: still running,
        or stopped; its success rate covers only the tasks done so far."""
        n = self.expected_episodes
        return n is not None and len(self.episodes) < n

    @property
    def ok(self) -> pd.DataFrame:
        return self.episodes[self.episodes["ok"]] if not self.episodes.empty else self.episodes

    @property
    def n_errors(self) -> int:
        return 0 if self.episodes.empty else int((~self.episodes["ok"]).sum())

    @property
    def label(self) -> str:
        return f"{self.model}/{self.suite}/{self.method}/{self.tag}"


def load_runs(runs_dir: Path) -> list[Run]:
    """Every run folder under runs_dir that holds an episodes.jsonl or a manifest.json."""
    runs = []
    if not runs_dir.is_dir():
        return runs
    folders = {p.parent for pat in ("*/*/*/*/episodes.jsonl", "*/*/*/*/manifest.json")
               for p in runs_dir.glob(pat)}
    for folder in sorted(folders):
        model, suite, method, tag = folder.relative_to(runs_dir).parts
        manifest: dict[str, Any] = {}
        mpath = folder / "manifest.json"
        if mpath.exists():
            try:
                manifest = json.loads(mpath.read_text())
            except json.JSONDecodeError:
                warn(f"{mpath}: not valid JSON; model/suite/method/tag taken from the path")
        else:
            warn(f"{folder}: no manifest.json; model/suite/method/tag taken from the path")
        for key, from_path in (("model", model), ("suite", suite), ("method", method)):
            if manifest.get(key) not in (None, from_path):
                warn(f"{mpath}: {key}={manifest[key]!r} but the folder says {from_path!r}; "
                     "the folder is used")
        runs.append(Run(path=folder, model=model, suite=suite, method=method, tag=tag,
                        manifest=manifest, episodes=read_episodes(folder / "episodes.jsonl"),
                        overrides=parse_tag(tag)))
    return runs


@dataclass
class LatencyBench:
    """Paired-replay latency benchmark for one (model, suite): results/latency/{model}_{suite}."""

    model: str
    suite: str
    path: Path
    rows: pd.DataFrame  # CSV columns, plus stage_{vision,decoder,head,method}_ms from the JSON
    machine: dict[str, Any]
    # (method, tag) -> {"stages_mean", "latency_mean_ms", "method_parts_mean"} for JSON rows
    # that carry a component breakdown (benchmarks written before it have none)
    parts: dict = field(default_factory=dict)


def _stages_from_json(doc: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, float]]:
    """Per-stage medians from the latency JSON, keyed by (method, tag or None).

    Accepted shapes: rows carrying "stages_median" (or "stages"), and/or a top-level
    "stages" / "stages_median" map keyed by method or "method/tag".
    """
    out: dict[tuple[str, str | None], dict[str, float]] = {}
    for row in doc.get("rows") or []:
        st = row.get("stages_median") or row.get("stages")
        if isinstance(st, dict) and row.get("method"):
            out[(row["method"], row.get("tag"))] = st
    top = doc.get("stages_median") or doc.get("stages") or {}
    if isinstance(top, dict):
        for key, st in top.items():
            if isinstance(st, dict):
                method, _, tag = str(key).partition("/")
                out.setdefault((method, tag or None), st)
    return out


def load_latency(latency_dir: Path, models: set[str], suites: set[str]) -> list[LatencyBench]:
    """Every {model}_{suite}.csv under latency_dir whose model and suite are known."""
    benches = []
    if not latency_dir.is_dir():
        return benches
    for csv in sorted(latency_dir.glob("*.csv")):
        stem = csv.stem
        match = [(m, stem[len(m) + 1:]) for m in sorted(models, key=len, reverse=True)
                 if stem.startswith(m + "_")]
        if not match:
            # Models without runs still get their benchmark read: split at a known suite.
            match = [(stem[: -len(s) - 1], s) for s in suites if stem.endswith("_" + s)]
        if not match:
            warn(f"{csv}: cannot tell model and suite from the name; skipped")
            continue
        model, suite = match[0]
        try:
            rows = pd.read_csv(csv)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
            warn(f"{csv}: unreadable ({exc}); skipped")
            continue
        if "method" not in rows.columns:
            warn(f"{csv}: no 'method' column; skipped")
            continue
        if "tag" not in rows.columns:
            rows["tag"] = None
        machine: dict[str, Any] = {}
        parts: dict = {}
        jpath = csv.with_suffix(".json")
        if jpath.exists():
            try:
                doc = json.loads(jpath.read_text())
            except json.JSONDecodeError:
                warn(f"{jpath}: not valid JSON; stage breakdown unavailable")
                doc = {}
            machine = doc.get("machine") or {}
            stages = _stages_from_json(doc)
            for row in doc.get("rows") or []:
                if isinstance(row.get("method_parts_mean"), dict) and row.get("stages_mean"):
                    parts[(row.get("method"), row.get("tag"))] = {
                        k: row[k] for k in ("stages_mean", "latency_mean_ms",
                                            "method_parts_mean")}
            for stage in ("vision", "decoder", "head", "method"):
                rows[f"stage_{stage}_ms"] = [
                    _num((stages.get((m, t)) or stages.get((m, None)) or {}).get(stage))
                    for m, t in zip(rows["method"], rows["tag"], strict=True)]
        benches.append(LatencyBench(model, suite, csv, rows, machine, parts))
    return benches
