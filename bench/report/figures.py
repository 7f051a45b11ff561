"""Figures: success vs speedup, the alpha sweep, kept tokens over camera frames (paper
Fig. 14) and the controller's fine/coarse mode over an episode. PNG, one file per model
(kept-token overlays: one per run that saved frames). A figure with no data is skipped
with a message, never drawn empty or from made-up numbers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.report.load import Run, read_jsonl, warn  # noqa: E402
from bench.report.results import SOURCE_EPISODES, Results  # noqa: E402
from bench.report.tables import (  # noqa: E402
    ABLATION_METHOD,
    family_suites,
    method_name,
    ordered_methods,
    suite_name,
)

VIEWS = ["agentview", "robot0_eye_in_hand"]
VIEW_NAMES = {"agentview": "third-person", "robot0_eye_in_hand": "wrist"}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


def _colors(methods: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _sr_and_err(res: Results, run: Run) -> tuple[float, list[float]] | None:
    stat = res.success(run)
    if not stat.n:
        return None
    lo, hi = stat.interval
    # max(0, .): at 0% or 100% the interval's end equals the rate up to rounding
    return 100 * stat.rate, [max(0.0, 100 * (stat.rate - lo)), max(0.0, 100 * (hi - stat.rate))]


def success_vs_speedup(res: Results, model: str, out_dir: Path) -> Path | None:
    """One panel per suite; a point per method and alpha (default-parameter runs)."""
    suites = [s for s in family_suites(res, "libero") + family_suites(res, "simpler")
              if res.find(model, s)]
    methods = ordered_methods(res.methods(model))
    colors = _colors(methods)
    panels = []
    for suite in suites:
        points = []
        for method in methods:
            for run in sorted((r for r in res.find(model, suite, method)
                               if r.default_params and not r.partial),
                              key=lambda r: r.alpha or 0):
                sr, speed = _sr_and_err(res, run), res.speedup(run)
                if sr is not None and speed is not None:
                    points.append((method, run, speed, sr))
        if points:
            panels.append((suite, points))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4), squeeze=False)
    for ax, (suite, points) in zip(axes[0], panels, strict=True):
        labelled = set()
        for method, run, speed, (sr, err) in points:
            hollow = speed.source == SOURCE_EPISODES
            ax.errorbar(speed.value, sr, yerr=[[err[0]], [err[1]]], fmt="o", capsize=3,
                        color=colors[method], mfc="white" if hollow else colors[method],
                        label=None if method in labelled else method_name(method))
            labelled.add(method)
            if run.alpha is not None and method != "none":
                ax.annotate(f"α={run.alpha:g}", (speed.value, sr), fontsize=7,
                            xytext=(4, 3), textcoords="offset points")
        ax.set_title(suite_name(suite))
        ax.set_xlabel("speedup vs none (×)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success rate % (Wilson 95% CI)")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{model}: success vs speedup (hollow = speedup from episode latencies)",
                 fontsize=9)
    return _save(fig, out_dir / f"success_vs_speedup_{_safe(model)}.png")


def alpha_sweep(res: Results, model: str, out_dir: Path) -> Path | None:
    """Success and speedup vs alpha, a line per (method, suite) with at least two alphas."""
    lines = []
    for method in ordered_methods(res.methods(model)):
        for suite in res.suites(model):
            runs = sorted((r for r in res.find(model, suite, method)
                           if r.default_params and r.alpha is not None and not r.partial),
                          key=lambda r: r.alpha)
            if method != "none" and len({r.alpha for r in runs}) >= 2:
                lines.append((method, suite, runs))
    if not lines:
        return None
    fig, (ax_sr, ax_sp) = plt.subplots(1, 2, figsize=(10, 4))
    for method, suite, runs in lines:
        label = f"{method_name(method)} · {suite_name(suite)}"
        xs, ys, errs = [], [], [[], []]
        for r in runs:
            sr = _sr_and_err(res, r)
            if sr is not None:
                xs.append(r.alpha)
                ys.append(sr[0])
                errs[0].append(sr[1][0])
                errs[1].append(sr[1][1])
        if xs:
            ax_sr.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
        speeds = [(r.alpha, res.speedup(r)) for r in runs]
        speeds = [(a, s.value) for a, s in speeds if s is not None]
        if speeds:
            ax_sp.plot(*zip(*speeds, strict=True), marker="o", label=label)
        base = res.baseline(model, suite)
        stat = res.success(base)
        if stat.n:
            ax_sr.axhline(100 * stat.rate, ls="--", lw=0.8, color="grey")
    ax_sr.set(xlabel="α (prune ratio)", ylabel="success rate % (Wilson 95% CI)",
              title="success vs α (dashed: none)")
    ax_sp.set(xlabel="α (prune ratio)", ylabel="speedup vs none (×)", title="speedup vs α")
    for ax in (ax_sr, ax_sp):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{model}: α sweep", fontsize=9)
    return _save(fig, out_dir / f"alpha_sweep_{_safe(model)}.png")


def overlay(ax, image: np.ndarray, kept: np.ndarray, grid: int) -> None:
    """Draw the frame (H, W, 3) uint8 with every patch not kept darkened.

    kept: patch indices on the grid x grid patch grid, row-major (index = row * grid + col,
    row 0 at the top of the image as stored).
    """
    h, w = image.shape[:2]
    mask = np.zeros((grid, grid), dtype=bool)
    kept = np.asarray(kept, dtype=int).ravel()
    kept = kept[(kept >= 0) & (kept < grid * grid)]
    mask.flat[kept] = True
    rows = np.minimum((np.arange(h) * grid) // h, grid - 1)
    cols = np.minimum((np.arange(w) * grid) // w, grid - 1)
    pixel_mask = mask[rows][:, cols]
    shaded = image.astype(float) / 255.0
    shaded[~pixel_mask] *= 0.25
    ax.imshow(shaded)
    ax.set_xticks([])
    ax.set_yticks([])


def kept_tokens(run: Run, out_dir: Path, n_frames: int = 4) -> Path | None:
    """Kept visual tokens over the camera frames of a few queries of one episode."""
    frames_dir = run.path / "frames"
    episodes = sorted(p for p in frames_dir.iterdir() if p.is_dir()) if frames_dir.is_dir() \
        else []
    for ep_dir in episodes:
        files = sorted(ep_dir.glob("q*.npz"))
        if files:
            break
    else:
        return None
    pick = [files[i] for i in sorted({round(i) for i in np.linspace(0, len(files) - 1,
                                                                    min(n_frames, len(files)))})]
    data = []
    for f in pick:
        try:
            with np.load(f) as z:
                data.append((f.stem, {k: z[k] for k in z.files}))
        except (OSError, ValueError) as exc:
            warn(f"{f}: unreadable ({exc}); skipped")
    views = [v for v in VIEWS if any(v in d and f"kept_{v}" in d for _, d in data)]
    if not data or not views:
        return None
    fig, axes = plt.subplots(len(views), len(data), figsize=(2.6 * len(data), 2.7 * len(views)),
                             squeeze=False)
    for j, (stem, d) in enumerate(data):
        grid = int(np.asarray(d.get("grid", 0)).ravel()[0]) if "grid" in d else 0
        for i, view in enumerate(views):
            ax = axes[i][j]
            if view not in d or f"kept_{view}" not in d or grid <= 0:
                ax.axis("off")
                continue
            overlay(ax, d[view], d[f"kept_{view}"], grid)
            n_kept = len(np.asarray(d[f"kept_{view}"]).ravel())
            ax.set_title(f"{stem} · {VIEW_NAMES[view]} · {n_kept}/{grid * grid}", fontsize=7)
    fig.suptitle(f"Kept visual tokens (bright): {run.label}, episode {ep_dir.name}", fontsize=8)
    name = f"kept_tokens_{_safe(run.model)}_{_safe(run.suite)}_{_safe(run.method)}_" \
           f"{_safe(run.tag)}.png"
    return _save(fig, out_dir / name)


def _mode_series(run: Run) -> tuple[str, list[float], list[str], list[float]] | None:
    """(episode_id, x, modes, kept visual tokens or []) for one episode of the run."""
    qpath = run.path / "queries.jsonl"
    if qpath.exists():
        by_ep: dict[str, dict[int, dict]] = {}
        for q in read_jsonl(qpath):
            mode = (q.get("method") or {}).get("mode")
            if mode in ("fine", "coarse"):
                # A resumed run may have appended an episode's queries twice: keep the last.
                by_ep.setdefault(str(q.get("episode_id")), {})[q.get("query_idx", -1)] = q
        if by_ep:
            # Prefer an episode that uses both modes; then the longest.
            ep_id = max(by_ep, key=lambda e: (
                len({q["method"]["mode"] for q in by_ep[e].values()}), len(by_ep[e])))
            qs = [by_ep[ep_id][k] for k in sorted(by_ep[ep_id])]
            xs = [q.get("step", q.get("query_idx", i)) for i, q in enumerate(qs)]
            kept = [float(np.mean(q["kept_per_layer"])) if q.get("kept_per_layer")
                    else math.nan for q in qs]
            return ep_id, xs, [q["method"]["mode"] for q in qs], kept
    ok = run.ok
    rows = [(eid, m) for eid, m in zip(ok["episode_id"], ok["modes"], strict=True)
            if isinstance(m, list) and m]
    if not rows:
        return None
    ep_id, modes = max(rows, key=lambda r: (len(set(r[1])), len(r[1])))
    return str(ep_id), list(range(len(modes))), list(modes), []


def controller_modes(res: Results, model: str, suite: str, out_dir: Path) -> Path | None:
    """Fine/coarse mode of every query over one SpecPrune episode."""
    main = res.main_run(model, suite, ABLATION_METHOD)
    candidates = ([main] if main else []) + [r for r in res.find(model, method=ABLATION_METHOD)
                                             if r is not main]
    for run in candidates:
        series = _mode_series(run)
        if series is not None:
            break
    else:
        return None
    ep_id, xs, modes, kept = series
    fig, ax = plt.subplots(figsize=(9, 2.8))
    # where="post" draws each mode until the next query; give the last one a width too.
    xs_step = list(xs) + [xs[-1] + (xs[-1] - xs[-2] if len(xs) > 1 else 1)]
    levels = [1 if m == "fine" else 0 for m in modes]
    ax.step(xs_step, levels + levels[-1:], where="post", color="tab:blue")
    ax.set_yticks([0, 1], ["coarse", "fine"])
    ax.set_ylim(-0.2, 1.2)
    from_queries = (run.path / "queries.jsonl").exists() and any(not math.isnan(k) for k in kept)
    ax.set_xlabel("environment step" if from_queries else "policy query")
    fine = sum(m == "fine" for m in modes)
    ax.set_title(f"Controller mode: {run.label}, episode {ep_id} "
                 f"({fine}/{len(modes)} queries fine)", fontsize=8)
    if kept and any(not math.isnan(k) for k in kept):
        ax2 = ax.twinx()
        ax2.plot(xs, kept, color="tab:orange", lw=1, marker=".", ms=3)
        ax2.set_ylabel("visual tokens kept\n(mean over layers)", color="tab:orange", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out_dir / f"controller_modes_{_safe(model)}.png")


def all_figures(res: Results, out_dir: Path, ablation_suite: str) -> tuple[list[Path], list[str]]:
    """Write every figure that has data; return (written paths, skipped-figure messages)."""
    written, skipped = [], []
    for model in res.models:
        for make, why in [
            (lambda m=model: success_vs_speedup(res, m, out_dir),
             "success vs speedup: no run has both ok episodes and a speedup"),
            (lambda m=model: alpha_sweep(res, m, out_dir),
             "alpha sweep: no method has default-parameter runs at two or more alphas"),
            (lambda m=model: controller_modes(res, m, ablation_suite, out_dir),
             "controller modes: no SpecPrune run recorded fine/coarse modes"),
        ]:
            path = make()
            if path:
                written.append(path)
            else:
                skipped.append(f"{model}: {why}")
        runs_with_frames = [r for r in res.find(model) if (r.path / "frames").is_dir()]
        for run in runs_with_frames:
            path = kept_tokens(run, out_dir)
            if path:
                written.append(path)
        if not runs_with_frames:
            skipped.append(f"{model}: kept-token overlay: no run saved frames/")
    return written, skipped
