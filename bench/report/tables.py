"""Build every table: main (paper Table 1), paired differences, latency (Table 10),
SpecPrune ablations (Fig. 8, Tables 3, 4, 7, 11), token retention (Table 8) and the
per-stage overhead breakdown (Table 9). One section per model in each table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from bench.report.load import Run, warn
from bench.report.render import (
    DAGGER,
    Cell,
    Section,
    Table,
    diff_cell,
    missing,
    number_cell,
    p_text,
    pct_cell,
    rate_cell,
    speedup_cell,
    success_cell,
    text,
)
from bench.report.results import (
    BASELINE,
    SOURCE_EPISODES,
    SOURCE_REPLAY,
    Results,
    Sourced,
)
from bench.stats import paired_difference

LIBERO_SUITES = ["libero_spatial", "libero_object", "libero_goal", "libero_10"]
SUITE_NAMES = {"libero_spatial": "Spatial", "libero_object": "Object", "libero_goal": "Goal",
               "libero_10": "Long", "libero_90": "LIBERO-90"}
METHOD_ORDER = ["none", "fastv", "divprune", "sparsevlm", "vla_cache", "efficientvla",
                "specprune"]
METHOD_NAMES = {"none": "Baseline (none)", "fastv": "FastV", "divprune": "DivPrune",
                "sparsevlm": "SparseVLM", "vla_cache": "VLA-Cache",
                "efficientvla": "EfficientVLA", "specprune": "SpecPrune"}
ABLATION_METHOD = "specprune"
# What each SpecPrune switch is when neither the run's tag nor its manifest says (METHODS.md).
ABLATION_DEFAULTS: dict[str, Any] = {
    "static": True, "dynamic_layers": True, "controller": True, "use_global": True,
    "layer_weighting": "entropy", "vt_threshold": 0.5, "vr_threshold": 0.2}
STANDARD_ALPHAS = [1.0, 0.8, 0.6]
STANDARD_VT = [0.3, 0.5, 0.7]
STANDARD_VR = [0.1, 0.2, 0.4]

SUMMARY_COLUMNS_TAIL = ["Avg SR", "Avg speedup", "LM FLOPs", "Total FLOPs"]
SR_NOTE = ("Success % with Wilson 95% interval [lo, hi]; n = episodes with status ok behind "
           "the number; 'err' = episodes that raised an exception, reported apart and never "
           "counted as failures.")
SPEEDUP_NOTE = ("Speedup = baseline latency / method latency, from the paired replay "
                "benchmark (results/latency/{model}_SUITE.csv) when it has the run; "
                f"{DAGGER} = fallback: ratio of median episode latencies vs none on the same "
                "suite. FLOPs per policy query as % of none: replay benchmark, "
                f"{DAGGER} = mean over the rollout episodes. On an average, {DAGGER} means at "
                "least one suite's value is a fallback (per-suite values and sources: "
                "latency table).")


def suite_name(suite: str) -> str:
    if suite in SUITE_NAMES:
        return SUITE_NAMES[suite]
    return suite.removeprefix("simpler_")


def suite_order(suite: str) -> tuple[int, str]:
    """Sort key: the LIBERO suites in their usual order, then the others by name."""
    return (LIBERO_SUITES.index(suite) if suite in LIBERO_SUITES else 99, suite)


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def ordered_methods(methods: list[str]) -> list[str]:
    return METHOD_ORDER + sorted(set(methods) - set(METHOD_ORDER))


def row_label(method: str, runs: list[Run | None]) -> str:
    alphas = sorted({r.alpha for r in runs if r is not None and r.alpha is not None})
    if method == BASELINE or not alphas:
        return method_name(method)
    return f"{method_name(method)} (α={'/'.join(f'{a:g}' for a in alphas)})"


def provenance(res: Results, model: str, runs: list[Run | None]) -> list[str]:
    used = [r for r in runs if r is not None]
    n_ok = sum(len(r.ok) for r in used)
    return [f"Model: {model}. Machine: {res.describe_machines(used)}. "
            f"Git commit: {res.describe_commits(used)}. "
            f"{len(used)} run(s), {n_ok} ok episode(s)."]


def mean_sourced(values: list[Sourced | None], n_expected: int,
                 fmt: Callable[[Sourced | None], Cell] = speedup_cell) -> Cell:
    """Mean of the values present, marked when any came from episodes (fallback) and
    when fewer than n_expected suites have one."""
    present = [v for v in values if v is not None]
    if not present:
        return missing()
    src = SOURCE_EPISODES if any(v.source == SOURCE_EPISODES for v in present) else SOURCE_REPLAY
    cell = fmt(Sourced(sum(v.value for v in present) / len(present), src))
    cover = f" ({len(present)}/{n_expected} suites)" if len(present) < n_expected else ""
    return Cell(cell.md + cover, cell.tex + cover)


def partial_mark(cell: Cell, run: Run | None) -> Cell:
    """A run with fewer episodes than it was started for says so (and stays out of averages)."""
    if run is None or not run.partial or cell.missing:
        return cell
    note = f" (partial: {len(run.episodes)}/{run.expected_episodes})"
    return Cell(cell.md + note, cell.tex + note)


def summary_row(res: Results, label: str, suites: list[str],
                run_for: Callable[[str], Run | None]) -> list[Cell | str]:
    """[label, SR per suite..., avg SR, avg speedup, LM FLOPs %, total FLOPs %]."""
    runs = [run_for(s) for s in suites]
    stats = [res.success(r) for r in runs]
    row: list[Cell | str] = [label] + [partial_mark(success_cell(s), r)
                                       for s, r in zip(stats, runs, strict=True)]
    with_results = [s for s, r in zip(stats, runs, strict=True)
                    if s.n and not (r is not None and r.partial)]
    if suites and len(with_results) == len(suites):
        avg = sum(s.rate for s in stats) / len(stats)
        row.append(text(f"{100 * avg:.1f} (n={sum(s.n for s in stats)})"))
    elif with_results:
        row.append(Cell(f"incomplete ({len(with_results)}/{len(suites)} suites)",
                        f"-- ({len(with_results)}/{len(suites)})", missing=True))
    else:
        row.append(missing())
    finished = [None if r is None or r.partial else r for r in runs]
    row.append(mean_sourced([res.speedup(r) for r in finished], len(suites)))
    for kind in ("decoder", "total"):
        row.append(mean_sourced([res.flops_pct(r, kind) for r in finished], len(suites),
                                pct_cell))
    return row


# ---- main table --------------------------------------------------------------------------
def family_suites(res: Results, family: str) -> list[str]:
    found = {r.suite for r in res.runs}
    if family == "libero":
        return LIBERO_SUITES + sorted(s for s in found if s.startswith("libero_")
                                      and s not in LIBERO_SUITES)
    return sorted(s for s in found if s.startswith("simpler_"))


def main_table(res: Results, family: str = "libero") -> Table:
    suites = family_suites(res, family)
    avg_suites = [s for s in suites if family != "libero" or s in LIBERO_SUITES]
    name, title = (("main", "Main results: LIBERO success rate, speedup and FLOPs")
                   if family == "libero" else
                   ("main_simpler", "Main results: SimplerEnv success rate, speedup and FLOPs"))
    columns = ["Method"] + [suite_name(s) for s in suites] + SUMMARY_COLUMNS_TAIL
    sections = []
    for model in res.models or ["(no runs)"]:
        rows, used, tags = [], [], []
        for method in ordered_methods(res.methods(model)):
            runs = {s: res.main_run(model, s, method) for s in suites}
            used += runs.values()
            row = summary_row(res, row_label(method, list(runs.values())), suites, runs.get)
            # Extra suites (libero_90) show their cell but stay out of the averages.
            if avg_suites != suites:
                row[1 + len(suites):] = summary_row(
                    res, "", avg_suites, runs.get)[1 + len(avg_suites):]
            rows.append(row)
            run_tags = sorted({r.tag for r in runs.values() if r is not None})
            if run_tags:
                tags.append(f"{method}: {', '.join(run_tags)}")
        notes = [SR_NOTE, "Avg SR = mean of the per-suite rates over "
                 f"{', '.join(suite_name(s) for s in avg_suites)}; shown only when each has "
                 "the results of a finished run (partial: a run with fewer episodes than it was "
                 "started for, still running or stopped). Avg speedup / FLOPs = mean over the suites that have one.",
                 SPEEDUP_NOTE.replace("{model}", model),
                 f"Rows: each method's default-parameter run at α={res.main_alpha:g}; none: "
                 "its default-parameter run (bench/report/results.py). Tags used: "
                 + ("; ".join(tags) if tags else "none") + "."]
        if not res.runs:
            notes.insert(0, "No results exist under results/runs yet.")
        sections.append(Section(f"Model {model}", rows, provenance(res, model, used), notes))
    return Table(name, title, columns, sections)


# ---- paired differences ------------------------------------------------------------------
def paired_table(res: Results) -> Table:
    columns = ["Method", "Suite", "n pairs", "SR method", "SR none", "Δ (pp)", "b", "c",
               "McNemar p"]
    sections = []
    for model in res.models or ["(no runs)"]:
        suites = [s for s in family_suites(res, "libero") + family_suites(res, "simpler")
                  if s in res.suites(model)]
        rows, used = [], []
        for method in ordered_methods(res.methods(model)):
            if method == BASELINE or not res.find(model, method=method):
                continue
            pooled_m: dict[tuple, bool] = {}
            pooled_b: dict[tuple, bool] = {}
            for suite in suites:
                run, base = res.main_run(model, suite, method), res.baseline(model, suite)
                if run is None:
                    continue
                used += [run, base]
                diff = res.paired(run, base)
                rows.append(paired_row(method, suite_name(suite), diff))
                if diff is not None and suite.startswith("libero_"):
                    pooled_m |= {(suite, *k): v for k, v in res.outcomes(run).items()}
                    pooled_b |= {(suite, *k): v for k, v in res.outcomes(base).items()}
            if pooled_m:
                diff = paired_difference(pooled_m, pooled_b)
                rows.append(paired_row(method, "all LIBERO (pooled)",
                                       diff if diff.n_pairs else None))
        notes = ["Pairs: the same (task_id, init_state_idx, seed) in the method's and none's "
                 "main runs, both with status ok. b = method succeeded where none failed, "
                 "c = the reverse; SR columns and Δ = (b - c) / n pairs are on the paired episodes "
                 "only; p = exact two-sided McNemar "
                 "(binomial on the b + c discordant pairs)."]
        sections.append(Section(f"Model {model}", rows, provenance(res, model, used), notes))
    return Table("paired", "Paired success differences vs none (exact McNemar)", columns,
                 sections)


def paired_row(method: str, suite: str, diff) -> list[Cell | str]:
    if diff is None:
        return [method_name(method), suite] + [missing() for _ in range(7)]
    return [method_name(method), suite, str(diff.n_pairs), rate_cell(diff.method_rate),
            rate_cell(diff.baseline_rate), f"{100 * diff.diff:+.1f}", str(diff.b), str(diff.c),
            p_text(diff.p_value)]


# ---- partial progress on multi-step goals ------------------------------------------------
def subgoals_table(res: Results) -> Table:
    """For suites whose goals have several conjuncts (libero_10: 'put both ... in the basket'),
    how many conjuncts the main runs' episodes reached: success alone hides a policy that does
    the first half of a task."""
    columns = ["Method", "Suite", "Episodes", "Success %", "Achieved / open at start",
               "Conjuncts held at end", "Conjuncts reached at a query",
               "Episodes with >= 1 at end"]
    sections = []
    for model in res.models or ["(no runs)"]:
        rows, used = [], []
        for suite in sorted(res.suites(model), key=lambda x: (x not in LIBERO_SUITES, x)):
            for method in ordered_methods(res.methods(model)):
                run = res.main_run(model, suite, method)
                if run is None or run.ok.empty:
                    continue
                ok = run.ok[run.ok["goals_n"].notna()]
                if ok.empty or not (ok["goals_n"] > 1).any():
                    continue
                used.append(run)
                n, fin, ever = ok["goals_n"].sum(), ok["goals_final"].sum(), ok["goals_ever"].sum()
                opened = ok["goals_open"].dropna()
                achieved = (missing() if len(opened) < len(ok) or opened.sum() == 0 else
                            text(f"{int(ok['goals_achieved'].sum())}/{int(opened.sum())} "
                                 f"({100 * ok['goals_achieved'].sum() / opened.sum():.1f}%)"))
                rows.append([method_name(method), suite_name(suite), str(len(ok)),
                             rate_cell(float(ok["success"].mean())), achieved,
                             f"{int(fin)}/{int(n)} ({100 * fin / n:.1f}%)",
                             f"{int(ever)}/{int(n)} ({100 * ever / n:.1f}%)",
                             str(int((ok["goals_final"] >= 1).sum()))])
        notes = ["Main runs whose episodes record their goal's conjuncts (episodes written "
                 "since the runner started recording them) and whose suite has goals of "
                 "several conjuncts. A conjunct is one predicate of the BDDL goal (e.g. "
                 "'in soup basket'), evaluated with LIBERO's own predicate functions at every "
                 "policy query and at the end of the episode. A conjunct can hold from the "
                 "start (a drawer that starts closed satisfies 'close the drawer'): 'achieved' "
                 "counts only conjuncts false at the first query and true at the end (episodes "
                 "recorded before the runner kept the first status show 'no results' there)."]
        if not rows:
            notes.insert(0, "No main run records multi-conjunct goals yet.")
        sections.append(Section(f"Model {model}", rows, provenance(res, model, used), notes))
    return Table("subgoals", "Partial progress: goal conjuncts reached (multi-step tasks)",
                 columns, sections)


# ---- success per task ---------------------------------------------------------------------
PER_TASK_P = 0.05  # per-task paired difference vs none marked when McNemar p is below this


def per_task_table(res: Results) -> Table:
    """Success per task of every method's main run, one section per suite: where a method
    loses (or gains) its episodes, which the suite average hides. A count is marked when the
    task's paired episodes differ from none's at McNemar p < PER_TASK_P."""
    found = []  # (model, suite, [(method, run)])
    for model in res.models:
        for suite in sorted(res.suites(model), key=suite_order):
            runs = [(m, res.main_run(model, suite, m)) for m in ordered_methods(res.methods(model))]
            runs = [(m, r) for m, r in runs if r is not None and not r.ok.empty]
            if runs:
                found.append((model, suite, runs))
    tasks = sorted({int(t) for *_, runs in found for _, r in runs
                    for t in r.ok["task_id"].dropna()})
    sections = []
    for model, suite, runs in found:
        base = res.baseline(model, suite)
        rows, used, instr = [], [], {}
        for method, run in runs:
            used.append(run)
            row: list[Cell | str] = [method_name(method)]
            for t in tasks:
                ok = run.ok[run.ok["task_id"] == t]
                if ok.empty:
                    row.append(missing())
                    continue
                instr.setdefault(t, next((i for i in ok["instruction"] if isinstance(i, str)),
                                         None))
                cell = f"{int(ok['success'].sum())}/{len(ok)}"
                if base is not None and run is not base:
                    d = paired_difference(
                        {k: v for k, v in res.outcomes(run).items() if k[0] == t},
                        {k: v for k, v in res.outcomes(base).items() if k[0] == t})
                    if d.n_pairs and d.p_value < PER_TASK_P:
                        cell += "*"
                row.append(cell)
            row.append(f"{int(run.ok['success'].sum())}/{len(run.ok)}")
            rows.append(row)
        notes = ["Successes / ok episodes per task of each method's main run (the main "
                 f"table's rule); * = the task's paired episodes differ from none's at exact "
                 f"McNemar p < {PER_TASK_P:g}, uncorrected for the number of tasks: read it as "
                 "where to look, not as a finding."]
        notes += [f"T{t}: {i}" for t, i in sorted(instr.items()) if i]
        sections.append(Section(f"Model {model}: {suite_name(suite)} ({suite})", rows,
                                provenance(res, model, used), notes))
    if not sections:
        sections = [Section("", [], [], ["No results exist under results/runs yet."])]
    return Table("per_task", "Success per task (main runs)",
                 ["Method"] + [f"T{t}" for t in tasks] + ["All"], sections)

# ---- latency per suite (Table 10) --------------------------------------------------------
REPLAY_ONLY = "‡"  # replay benchmark only: the method has no rollout run on this suite


def latency_cell(res: Results, run: Run | None, model: str = "", suite: str = "",
                 method: str = "") -> Cell:
    if run is None:
        row = res.replay_row(model, suite, method) if method else None
        if row is None or pd.isna(row.get("median_ms")):
            return missing()
        return text(f"{float(row['median_ms']):.1f} ms{REPLAY_ONLY} / "
                    f"{float(row['speedup']):.2f}×{REPLAY_ONLY}")
    row = res.bench_row(run)
    speed = res.speedup(run)
    if row is not None and pd.notna(row.get("median_ms")):
        ms, mark = float(row["median_ms"]), ""
    else:
        ms, mark = res.median_latency(run), DAGGER
    if math.isnan(ms):
        return missing(run.n_errors)
    sp = speedup_cell(speed).md if speed is not None else "no speedup"
    return text(f"{ms:.1f} ms{mark} / {sp}")


def latency_table(res: Results) -> Table:
    suites = family_suites(res, "libero") + family_suites(res, "simpler")
    sections = []
    for model in res.models or ["(no runs)"]:
        rows, used = [], []
        methods = sorted(set(res.methods(model)) | set(res.replay_methods(model)))
        for method in ordered_methods(methods):
            runs = [res.main_run(model, s, method) for s in suites]
            used += runs
            rows.append([row_label(method, runs)] + [latency_cell(res, r, model, s, method)
                                                     for r, s in zip(runs, suites, strict=True)])
        notes = ["Median end-to-end policy latency per query (ms) / speedup vs none. "
                 + SPEEDUP_NOTE.replace("{model}", model) + f" {DAGGER} on a latency: median "
                 f"over ok episodes of each episode's median query latency. {REPLAY_ONLY}: "
                 "from the replay benchmark only; the method has no rollout run on that suite "
                 "yet (no success rate behind it)."]
        for s in suites:
            bench = res.bench(model, s)
            if bench is not None:
                m = bench.machine
                notes.append(f"{suite_name(s)}: replay benchmark {bench.path.name}, n_obs="
                             f"{_first(bench.rows, 'n_obs')}, n_repeats="
                             f"{_first(bench.rows, 'n_repeats')}, machine: {m.get('cpu', '?')} "
                             f"({m.get('cores', '?')} cores, {m.get('device', '?')}).")
        sections.append(Section(f"Model {model}", rows, provenance(res, model, used), notes))
    return Table("latency", "Latency and speedup per suite",
                 ["Method"] + [suite_name(s) for s in suites], sections)


def _first(df: pd.DataFrame, col: str) -> str:
    return str(df[col].iloc[0]) if col in df.columns and len(df) else "?"


# ---- SpecPrune ablations -----------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


def find_variant(res: Results, model: str, suite: str, spec: dict[str, Any],
                 alpha: float | None = None) -> Run | None:
    """The SpecPrune run at `alpha` whose switches equal `spec` and every other ablation
    switch its default. Other parameters are free (e.g. K_local = 54 without global
    scores). Ties go to the run with the fewest tag overrides."""
    alpha = res.main_alpha if alpha is None else alpha
    defaults = dict(ABLATION_DEFAULTS)
    main = res.main_run(model, suite, ABLATION_METHOD)
    if main is not None:
        defaults |= {k: main.param(k, v) for k, v in defaults.items()}
    want = defaults | spec
    found = [r for r in res.find(model, suite, ABLATION_METHOD)
             if r.alpha is not None and _same(r.alpha, alpha)
             and all(_same(r.param(k, defaults[k]), v) for k, v in want.items())]
    if not found:
        return None
    found.sort(key=lambda r: (len(r.overrides), r.tag))
    if len(found) > 1 and len(found[0].overrides) == len(found[1].overrides):
        warn(f"ablation {spec} on {model}/{suite}: runs {[r.tag for r in found]} all match; "
             f"using {found[0].tag}")
    return found[0]


def _mean_col(run: Run | None, col: str) -> float:
    if run is None or run.ok.empty:
        return math.nan
    return float(run.ok[col].mean())


def retention(run: Run | None, col: str = "visual_kept_mean") -> float:
    kept, total = _mean_col(run, col), _mean_col(run, "visual_total")
    return kept / total if total and not math.isnan(total) else math.nan


def ablation_rows(res: Results, model: str, suite: str,
                  variants: list[tuple[str, Run | None]]) -> list[list[Cell | str]]:
    base = res.baseline(model, suite)
    rows = []
    for label, run in [("Baseline (none)", base)] + variants:
        sr = success_cell(res.success(run))
        if run is None:
            rows.append([label, missing(), sr] + [missing()] * 5)
            continue
        row = res.bench_row(run)
        if row is not None and pd.notna(row.get("median_ms")):
            lat = text(f"{float(row['median_ms']):.1f}")
        else:
            ms = res.median_latency(run)
            lat = missing() if math.isnan(ms) else text(f"{ms:.1f}{DAGGER}")
        rows.append([label, run.tag, sr,
                     text("reference") if run is base else diff_cell(res.paired(run, base)),
                     number_cell(100 * _mean_col(run, "recall_mean")), lat,
                     speedup_cell(res.speedup(run)),
                     number_cell(100 * retention(run))])
    return rows


ABLATION_COLUMNS = ["Variant", "Tag", "SR", "Δ vs none (paired)", "Recall %", "Latency ms",
                    "Speedup", "Visual kept %"]
ABLATION_NOTE = ("Recall % = mean over episodes of SpecPrune's per-episode recall of the "
                 "previous query's important set (paper Eq. 1). Visual kept % = mean visual "
                 "tokens present per decoder layer / visual tokens in the full input. "
                 f"Latency: replay benchmark median, {DAGGER} = median of episode medians.")


def ablation_table(res: Results, name: str, title: str, suite: str,
                   variants: list[tuple[str, dict[str, Any]]], extra_note: str = "") -> Table:
    sections = []
    for model in res.models or ["(no runs)"]:
        chosen = [(label, find_variant(res, model, suite, spec)) for label, spec in variants]
        rows = ablation_rows(res, model, suite, chosen)
        notes = [f"Suite: {suite}; SpecPrune at α={res.main_alpha:g}; each variant is the run "
                 "whose switches match it with every other switch at its default "
                 "(bench/report/tables.py: find_variant).", SR_NOTE, ABLATION_NOTE,
                 SPEEDUP_NOTE.replace("{model}", model)] + ([extra_note] if extra_note else [])
        used = [res.baseline(model, suite)] + [r for _, r in chosen]
        sections.append(Section(f"Model {model}", rows, provenance(res, model, used), notes))
    return Table(name, title, ABLATION_COLUMNS, sections)


def thresholds_table(res: Results, suite: str) -> Table:
    sections, vt_all, vr_all = [], set(STANDARD_VT), set(STANDARD_VR)
    for r in res.runs:
        if r.suite == suite and r.method == ABLATION_METHOD:
            vt, vr = r.param("vt_threshold"), r.param("vr_threshold")
            if isinstance(vt, int | float) and not isinstance(vt, bool):
                vt_all.add(float(vt))
            if isinstance(vr, int | float) and not isinstance(vr, bool):
                vr_all.add(float(vr))
    vts, vrs = sorted(vt_all), sorted(vr_all)
    for model in res.models or ["(no runs)"]:
        rows, used = [], []
        for vt in vts:
            row: list[Cell | str] = [f"v_t < {vt:g}"]
            for vr in vrs:
                run = find_variant(res, model, suite, {"vt_threshold": vt, "vr_threshold": vr})
                used.append(run)
                row.append(success_cell(res.success(run)))
            rows.append(row)
        notes = [f"Suite: {suite}; SpecPrune at α={res.main_alpha:g}, all techniques on; "
                 "fine mode when v_t < row threshold and v_r < column threshold (and dz <= "
                 "0).", SR_NOTE]
        sections.append(Section(f"Model {model}", rows, provenance(res, model, used), notes))
    return Table("ablation_thresholds",
                 "SpecPrune ablation: controller thresholds (paper Table 7)",
                 ["v_t threshold \\ v_r threshold"] + [f"v_r < {vr:g}" for vr in vrs], sections)


def specprune_alphas(res: Results, model: str) -> list[float]:
    found = {r.alpha for r in res.find(model, method=ABLATION_METHOD)
             if r.default_params and r.alpha is not None}
    return sorted(found | set(STANDARD_ALPHAS), reverse=True)


def _alpha_run(res: Results, model: str, suite: str, alpha: float) -> Run | None:
    return next((r for r in res.find(model, suite, ABLATION_METHOD)
                 if r.default_params and r.alpha is not None and _same(r.alpha, alpha)), None)


def alpha_table(res: Results) -> Table:
    suites = LIBERO_SUITES
    sections = []
    for model in res.models or ["(no runs)"]:
        rows, used = [], []
        base_runs = {s: res.baseline(model, s) for s in suites}
        used += base_runs.values()
        rows.append(summary_row(res, "Baseline (none)", suites, base_runs.get))
        for alpha in specprune_alphas(res, model):
            runs = {s: _alpha_run(res, model, s, alpha) for s in suites}
            used += runs.values()
            rows.append(summary_row(res, f"SpecPrune α={alpha:g}", suites, runs.get))
        notes = ["SpecPrune runs with default parameters at each α (tag alpha=...).", SR_NOTE,
                 SPEEDUP_NOTE.replace("{model}", model)]
        sections.append(Section(f"Model {model}", rows, provenance(res, model, used), notes))
    return Table("ablation_alpha", "SpecPrune ablation: prune ratio α (paper Table 11)",
                 ["Variant"] + [suite_name(s) for s in suites] + SUMMARY_COLUMNS_TAIL, sections)


def retention_table(res: Results, suite: str) -> Table:
    columns = ["α", "Visual tokens", "Kept after static", "Pruned after static",
               "Retention after static %", "Kept, mean over layers", "Retention (layers) %",
               "n"]
    sections = []
    for model in res.models or ["(no runs)"]:
        rows, used = [], []
        for alpha in specprune_alphas(res, model):
            run = _alpha_run(res, model, suite, alpha)
            used.append(run)
            if run is None or run.ok.empty:
                rows.append([f"{alpha:g}"] + [missing(run.n_errors if run else 0)] * 7)
                continue
            total = _mean_col(run, "visual_total")
            static = _mean_col(run, "kept_after_static")
            rows.append([f"{alpha:g}", number_cell(total, "{:.0f}"), number_cell(static),
                         number_cell(total - static), number_cell(100 * static / total),
                         number_cell(_mean_col(run, "visual_kept_mean")),
                         number_cell(100 * retention(run)), str(len(run.ok))])
        notes = [f"Suite: {suite}; SpecPrune, default parameters. Means over ok episodes of "
                 "each episode's mean over queries. 'After static' = visual tokens entering "
                 "decoder layer 2 (static pruning acts after layer 1); 'mean over layers' also "
                 "counts the full first two layers and layer-level pruning."]
        sections.append(Section(f"Model {model}", rows, provenance(res, model, used), notes))
    return Table("retention", "Visual-token retention by α (paper Table 8)", columns, sections)


def overhead_table(res: Results, suite: str) -> Table:
    columns = ["Method", "Vision ms", "Decoder ms", "Head ms", "Method ms", "Total ms",
               "Overhead %", "Speedup", "Source"]
    sections = []
    for model in res.models or ["(no runs)"]:
        bench_suites = [b.suite for b in res.latency if b.model == model]
        use_suite = suite if (suite in bench_suites or not bench_suites) else bench_suites[0]
        rows, used = [], []
        for method in ordered_methods(res.methods(model)):
            run = res.main_run(model, use_suite, method)
            used.append(run)
            rows.append(overhead_row(res, method, run, model, use_suite))
        notes = [f"Suite: {use_suite}. Per-stage median latency per policy query: vision "
                 "encoder, language model (decoder), action head, and what the method adds "
                 "(patch similarity, top-k, scores). Overhead % = method stage / total. Source "
                 "'replay' = results/latency JSON; 'episodes' = median over ok episodes of "
                 f"each episode's stage medians. {REPLAY_ONLY}: no rollout run of the method "
                 "on this suite yet; the replay benchmark's numbers."]
        sections.append(Section(f"Model {model}", rows, provenance(res, model, used), notes))
    return Table("overhead", "Latency breakdown per stage (paper Table 9)", columns, sections)


PART_LABELS = [("patch_extract", "Patch extraction"), ("similarity", "Similarity + selection"),
               ("scores", "Score reading"), ("entropy", "Attention entropy"),
               ("topk", "Top-k sorting"), ("prune", "Stream edits")]


def overhead_parts_table(res: Results, suite: str) -> Table:
    """The components of a method's own time (paper Table 9's columns), from the replay
    benchmark's per-query means: they add up to the method stage (the rest is 'Other').
    One section per replay benchmark of a model: `suite` first, then the others (each names
    its machine: the parts' milliseconds differ between CPUs)."""
    columns = ["Method"] + [lab + " ms" for _, lab in PART_LABELS] + [
        "Other ms", "Method ms", "Total ms", "Baseline ms"]
    sections = []
    for model in res.models or ["(no runs)"]:
        bench_suites = [b.suite for b in res.latency if b.model == model]
        use_suite = suite if (suite in bench_suites or not bench_suites) else bench_suites[0]
        order = [use_suite] + sorted((x for x in bench_suites if x != use_suite),
                                     key=suite_order)
        for one in order:
            sections.append(_overhead_parts_section(res, model, one,
                                                    titled=len(order) > 1))
    return Table("overhead_parts", "Method overhead by component (paper Table 9 columns)",
                 columns, sections)


def _overhead_parts_section(res: Results, model: str, use_suite: str, titled: bool) -> Section:
    bench = res.bench(model, use_suite)
    rows = []
    parts = bench.parts if bench is not None else {}
    base = next((p for (m, _), p in parts.items() if m == BASELINE), None)
    for (method, tag), p in parts.items():
        comp = p.get("method_parts_mean") or {}
        if not comp:
            continue
        method_ms = p["stages_mean"].get("method", math.nan)
        known = sum(comp.get(k, 0.0) for k, _ in PART_LABELS)
        rows.append([row_label(method, [None]) + (f" ({tag})" if tag and tag != "default"
                                                   else "")]
                    + [number_cell(comp[k], "{:.2f}") if k in comp else text("-")
                       for k, _ in PART_LABELS]
                    + [number_cell(method_ms - known, "{:.2f}"),
                       number_cell(method_ms, "{:.2f}"),
                       number_cell(p["latency_mean_ms"]),
                       number_cell(base["latency_mean_ms"]) if base else missing()])
    if not rows:
        rows = [["(no method breakdown in the replay benchmark)"] + [missing()] * 10]
    notes = [f"Suite: {use_suite}. Mean per policy query over the paired replay "
             "(results/latency JSON, `method_parts_mean`): the parts a method times itself "
             "(SpecPrune: similarity = reference-frame patch cosine and least-similar "
             "choice; score reading = mean text->visual score off a layer's attention "
             "rows; entropy = layer confidence, first query only; top-k = local/global "
             "top-k, EMA rank and top-gamma with the set bookkeeping; stream edits = "
             "dropping tokens) and patch extraction done for it by the policy. 'Other' = "
             "method stage minus those parts: hook dispatch, controller, frame choice. "
             "Means, so the parts add up; the per-stage table shows medians."]
    where = ([f"Model: {model}. Replay benchmark {bench.path}; machine: "
              f"{bench.machine.get('cpu', '?')} ({bench.machine.get('cores', '?')} cores, "
              f"{bench.machine.get('device', '?')})."] if bench is not None
             else [f"Model: {model}. No replay benchmark."])
    title = (f"Model {model}: {suite_name(use_suite)} ({use_suite})" if titled
             else f"Model {model}")
    return Section(title, rows, where, notes)


def overhead_row(res: Results, method: str, run: Run | None, model: str = "",
                 suite: str = "") -> list[Cell | str]:
    label = row_label(method, [run])
    stages = ["vision", "decoder", "head", "method"]
    if run is None:  # no rollout run: the replay benchmark's row, if it has the method
        row = res.replay_row(model, suite, method) if model else None
        if row is None or not all(pd.notna(row.get(f"stage_{s}_ms")) for s in stages):
            return [label] + [missing()] * 8
        vals = [float(row[f"stage_{s}_ms"]) for s in stages]
        return ([label + REPLAY_ONLY] + [number_cell(v) for v in vals] +
                [number_cell(float(row["median_ms"])), number_cell(float(row["overhead_pct"])),
                 speedup_cell(Sourced(float(row["speedup"]), SOURCE_REPLAY)), SOURCE_REPLAY])
    row = res.bench_row(run)
    if row is not None and all(pd.notna(row.get(f"stage_{s}_ms")) for s in stages):
        vals = [float(row[f"stage_{s}_ms"]) for s in stages]
        total = float(row["median_ms"]) if pd.notna(row.get("median_ms")) else math.nan
        over = float(row["overhead_pct"]) if pd.notna(row.get("overhead_pct")) else (
            100 * vals[3] / total if total else math.nan)
        source = SOURCE_REPLAY
    elif not run.ok.empty:
        vals = [float(run.ok[f"stage_{s}_ms"].median()) for s in stages]
        total = res.median_latency(run)
        over = 100 * vals[3] / total if total else math.nan
        source = SOURCE_EPISODES
    else:
        return [label] + [missing(run.n_errors)] * 8
    return ([label] + [number_cell(v) for v in vals] +
            [number_cell(total), number_cell(over), speedup_cell(res.speedup(run)), source])


def all_tables(res: Results, ablation_suite: str) -> list[Table]:
    s = ablation_suite
    tables = [main_table(res, "libero")]
    if family_suites(res, "simpler"):
        tables.append(main_table(res, "simpler"))
    tables += [
        paired_table(res),
        subgoals_table(res),
        per_task_table(res),
        latency_table(res),
        ablation_table(res, "ablation_techniques",
                       "SpecPrune ablation: techniques 1 / 1+2 / 1+2+3 (paper Fig. 8)", s, [
                           ("1: static", {"static": True, "dynamic_layers": False,
                                          "controller": False}),
                           ("1+2: + layer-level", {"static": True, "dynamic_layers": True,
                                                   "controller": False}),
                           ("1+2+3: + controller (full)", {"static": True,
                                                           "dynamic_layers": True,
                                                           "controller": True})]),
        ablation_table(res, "ablation_global",
                       "SpecPrune ablation: global attention scores (paper Table 3)", s, [
                           ("with global scores (full)", {"use_global": True}),
                           ("without global scores", {"use_global": False})],
                       "Without global scores the paper sets K_local = 54 (run's own "
                       "parameters, see its manifest)."),
        ablation_table(res, "ablation_weighting",
                       "SpecPrune ablation: layer weighting (paper Table 4)", s, [
                           ("entropy-based (full)", {"layer_weighting": "entropy"}),
                           ("average", {"layer_weighting": "average"})]),
        thresholds_table(res, s),
        alpha_table(res),
        retention_table(res, s),
        overhead_table(res, s),
        overhead_parts_table(res, s),
    ]
    return tables
