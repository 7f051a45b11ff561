"""Questions the tables ask of the results: which run is a method's main-table row, and its
success rate, speedup, FLOPs and paired difference against the baseline.

Row-selection rule (the main table and every "vs none" comparison):
- A run has *default method parameters* when its tag overrides nothing but `alpha`
  (tag `alpha=0.8`; a tag such as `alpha=0.8,controller=false` is an ablation run).
- A method's main row on a suite is its default-parameter run at alpha == `main_alpha`
  (0.8 by default, `--main-alpha`); for a method that ignores alpha (manifest alpha null,
  tag `default`), its default-parameter run.
- The baseline `none` ignores alpha: its main row is its default-parameter run, preferring
  alpha 1.0, then the highest alpha, then a run with no alpha at all.
- `--main-tag METHOD=TAG` replaces the rule for one method with an exact tag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.report.load import PAIR_KEY, LatencyBench, Run, parse_tag
from bench.stats import PairedDifference, paired_difference, wilson_interval

BASELINE = "none"
SOURCE_REPLAY = "replay"  # paired latency benchmark (results/latency/*.csv)
SOURCE_EPISODES = "episodes"  # ratio of median episode latencies in the rollouts
SOURCE_BASELINE = "baseline"  # the baseline against itself: 1.00x / 100 % by definition


@dataclass(frozen=True)
class SuccessStat:
    successes: int
    n: int  # episodes with status "ok"
    n_errors: int  # episodes with status "error", reported apart, never counted as failures

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.n)


@dataclass(frozen=True)
class Sourced:
    """A number and where it came from (SOURCE_*), for the footnotes."""

    value: float
    source: str


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) < 1e-9


class Results:
    def __init__(self, runs: list[Run], latency: list[LatencyBench], main_alpha: float = 0.8,
                 main_tags: dict[str, str] | None = None):
        self.runs = runs
        self.latency = latency
        self.main_alpha = main_alpha
        self.main_tags = main_tags or {}

    # ---- lookup -----------------------------------------------------------------------
    @property
    def models(self) -> list[str]:
        return sorted({r.model for r in self.runs})

    def suites(self, model: str) -> list[str]:
        return sorted({r.suite for r in self.runs if r.model == model})

    def methods(self, model: str) -> list[str]:
        return sorted({r.method for r in self.runs if r.model == model})

    def find(self, model: str, suite: str | None = None, method: str | None = None) -> list[Run]:
        return [r for r in self.runs if r.model == model
                and (suite is None or r.suite == suite) and (method is None or r.method == method)]

    def main_run(self, model: str, suite: str, method: str) -> Run | None:
        """The run behind a method's main-table row (rule in the module docstring)."""
        runs = self.find(model, suite, method)
        if method in self.main_tags:
            return next((r for r in runs if r.tag == self.main_tags[method]), None)
        runs = [r for r in runs if r.default_params]
        if method == BASELINE:
            def preference(r: Run) -> tuple[int, float]:
                a = r.alpha
                return (1 if _close(a, 1.0) else 0, -math.inf if a is None else a)
            return max(runs, key=preference) if runs else None
        at_alpha = [r for r in runs if _close(r.alpha, self.main_alpha)]
        ignores_alpha = [r for r in runs if r.alpha is None]
        return (at_alpha or ignores_alpha or [None])[0]

    def baseline(self, model: str, suite: str) -> Run | None:
        return self.main_run(model, suite, BASELINE)

    def bench(self, model: str, suite: str) -> LatencyBench | None:
        return next((b for b in self.latency if b.model == model and b.suite == suite), None)

    def bench_row(self, run: Run) -> pd.Series | None:
        """The latency-benchmark row for this run: same method and tag; for a default-
        parameter run, also a row of the same method at the same alpha with a default tag."""
        bench = self.bench(run.model, run.suite)
        if bench is None:
            return None
        rows = bench.rows[bench.rows["method"] == run.method]
        exact = rows[rows["tag"].astype(str) == run.tag]
        if not exact.empty:
            return exact.iloc[0]
        if not run.default_params:
            return None
        default_rows = rows[[pd.isna(t) or set(parse_tag(str(t))) <= {"alpha"}
                             for t in rows["tag"]]]
        if run.method == BASELINE:
            return default_rows.iloc[0] if not default_rows.empty else None
        if "alpha" in default_rows.columns and run.alpha is not None:
            same = default_rows[[_close(float(a), run.alpha) if pd.notna(a) else False
                                 for a in default_rows["alpha"]]]
            if not same.empty:
                return same.iloc[0]
        return None

    # ---- metrics ----------------------------------------------------------------------
    @staticmethod
    def success(run: Run | None) -> SuccessStat:
        if run is None or run.episodes.empty:
            return SuccessStat(0, 0, 0)
        ok = run.ok
        return SuccessStat(int(ok["success"].sum()), len(ok), run.n_errors)

    @staticmethod
    def median_latency(run: Run | None) -> float:
        """Median over ok episodes of each episode's median policy latency (ms)."""
        if run is None or run.ok.empty:
            return math.nan
        return float(run.ok["latency_median_ms"].median())

    def replay_row(self, model: str, suite: str, method: str) -> pd.Series | None:
        """A method's default row in the replay benchmark (at `main_alpha` for methods with an
        alpha), for methods that have no rollout run on the suite."""
        bench = self.bench(model, suite)
        if bench is None:
            return None
        rows = bench.rows[bench.rows["method"] == method]
        for _, row in rows.iterrows():
            tag = parse_tag(str(row["tag"])) if pd.notna(row["tag"]) else {}
            if set(tag) <= {"alpha"} and (not tag or _close(float(tag["alpha"]),
                                                               self.main_alpha)):
                return row
        return None

    def replay_methods(self, model: str) -> list[str]:
        return sorted({m for b in self.latency if b.model == model for m in b.rows["method"]})

    def speedup(self, run: Run | None) -> Sourced | None:
        """Baseline latency / method latency: the paired replay benchmark when it has this
        run, else the ratio of median episode latencies against `none` on the same suite."""
        if run is None:
            return None
        row = self.bench_row(run)
        if row is not None and pd.notna(row.get("speedup")):
            return Sourced(float(row["speedup"]), SOURCE_REPLAY)
        base = self.baseline(run.model, run.suite)
        if run.method == BASELINE and run is base and not run.ok.empty:
            return Sourced(1.0, SOURCE_BASELINE)
        num, den = self.median_latency(base), self.median_latency(run)
        if math.isnan(num) or math.isnan(den) or den <= 0:
            return None
        return Sourced(num / den, SOURCE_EPISODES)

    def flops_pct(self, run: Run | None, kind: str = "decoder") -> Sourced | None:
        """FLOPs per policy query as % of the baseline's (kind: 'decoder' or 'total')."""
        if run is None:
            return None
        row = self.bench_row(run)
        col = f"{kind}_flops_pct"
        if row is not None and col in row and pd.notna(row[col]):
            return Sourced(float(row[col]), SOURCE_REPLAY)
        base = self.baseline(run.model, run.suite)
        if run.method == BASELINE and run is base and not run.ok.empty:
            return Sourced(100.0, SOURCE_BASELINE)
        if base is None or base.ok.empty or run.ok.empty:
            return None
        num, den = run.ok[f"flops_{kind}"].mean(), base.ok[f"flops_{kind}"].mean()
        if pd.isna(num) or pd.isna(den) or den <= 0:
            return None
        return Sourced(float(100.0 * num / den), SOURCE_EPISODES)

    @staticmethod
    def outcomes(run: Run) -> dict[tuple, bool]:
        """{(task_id, init_state_idx, seed): success} over the run's ok episodes."""
        ok = run.ok
        return {tuple(k): bool(s) for k, s in
                zip(ok[list(PAIR_KEY)].itertuples(index=False), ok["success"], strict=True)}

    def paired(self, run: Run | None, reference: Run | None) -> PairedDifference | None:
        """run minus reference on their common ok episodes; None when nothing pairs."""
        if run is None or reference is None:
            return None
        diff = paired_difference(self.outcomes(run), self.outcomes(reference))
        return diff if diff.n_pairs else None

    # ---- provenance -------------------------------------------------------------------
    @staticmethod
    def describe_machines(runs: list[Run]) -> str:
        seen = []
        for r in runs:
            machines = [s.get("machine") for s in r.manifest.get("sessions") or []]
            for m in [r.manifest.get("machine")] + machines:  # resumed elsewhere: each one
                if not m:
                    continue
                text = f"{m.get('cpu', '?')} ({m.get('cores', '?')} cores, {m.get('device', '?')})"
                if text not in seen:
                    seen.append(text)
        return "; ".join(seen) if seen else "not recorded"

    @staticmethod
    def describe_commits(runs: list[Run]) -> str:
        commits = sorted({str(c)[:10] + ("-dirty" if str(c).endswith("-dirty") else "")
                          for c in (r.manifest.get("git_commit") for r in runs) if c})
        return ", ".join(commits) if commits else "not recorded"
