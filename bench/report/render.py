"""Table model and its Markdown / LaTeX renderings, plus the cell formats shared by tables.

A cell carries its Markdown and LaTeX text. A cell without results renders "no results" in
Markdown and "--" in LaTeX, and the LaTeX table then gets a footnote saying what "--" means.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from bench.report.results import SOURCE_EPISODES, Sourced, SuccessStat
from bench.stats import PairedDifference

NO_RESULTS = "no results"
DAGGER = "†"  # number derived from rollout episodes instead of the paired latency benchmark
TEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "×": r"$\times$", "α": r"$\alpha$",
                "†": r"$^\dagger$", "Δ": r"$\Delta$", "±": r"$\pm$"}


def tex_escape(text: str) -> str:
    return "".join(TEX_SPECIALS.get(ch, ch) for ch in str(text))


def _label(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9]+", "-", p).strip("-").lower() for p in parts if p)


@dataclass(frozen=True)
class Cell:
    md: str
    tex: str
    missing: bool = False


def text(value: object) -> Cell:
    s = str(value)
    return Cell(s, tex_escape(s))


def missing(n_errors: int = 0) -> Cell:
    """No ok episodes (or no number) for this cell; errors, if any, are still counted."""
    if n_errors:
        return Cell(f"{NO_RESULTS} ({n_errors} err)", f"-- ({n_errors} err)", missing=True)
    return Cell(NO_RESULTS, "--", missing=True)


def as_cell(value: Cell | str | int | float) -> Cell:
    return value if isinstance(value, Cell) else text(value)


# ---- shared cell formats -----------------------------------------------------------------
def success_cell(stat: SuccessStat, with_n: bool = True) -> Cell:
    """'70.0 [39.7, 89.2] n=10' (success %, Wilson 95% interval, ok episodes, errors)."""
    if stat.n == 0:
        return missing(stat.n_errors)
    lo, hi = stat.interval
    err = f", {stat.n_errors} err" if stat.n_errors else ""
    n = f" n={stat.n}{err}" if with_n else err
    return Cell(f"{100 * stat.rate:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]{n}",
                f"{100 * stat.rate:.1f} {{\\scriptsize [{100 * lo:.1f}, {100 * hi:.1f}]"
                f"{tex_escape(n)}}}")


def rate_cell(rate: float, n: int | None = None) -> Cell:
    if rate is None or math.isnan(rate):
        return missing()
    suffix = f" (n={n})" if n is not None else ""
    return text(f"{100 * rate:.1f}{suffix}")


def speedup_cell(value: Sourced | None) -> Cell:
    if value is None:
        return missing()
    mark = DAGGER if value.source == SOURCE_EPISODES else ""
    return text(f"{value.value:.2f}×{mark}")


def pct_cell(value: Sourced | None, digits: int = 0) -> Cell:
    if value is None:
        return missing()
    mark = DAGGER if value.source == SOURCE_EPISODES else ""
    return text(f"{value.value:.{digits}f}%{mark}")


def number_cell(value: float | None, fmt: str = "{:.1f}") -> Cell:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing()
    return text(fmt.format(value))


def p_text(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def diff_cell(diff: PairedDifference | None) -> Cell:
    """'-2.0 pp (p=0.500, n=50)': paired success difference and exact McNemar p."""
    if diff is None:
        return missing()
    return text(f"{100 * diff.diff:+.1f} pp (p={p_text(diff.p_value)}, n={diff.n_pairs})")


# ---- tables ------------------------------------------------------------------------------
@dataclass
class Section:
    """One table body (one model): heading, provenance lines, rows, footnotes."""

    heading: str
    rows: list[list[Cell | str]]
    meta: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Table:
    name: str  # file stem under results/tables/
    title: str
    columns: list[Cell | str]
    sections: list[Section]
    notes: list[str] = field(default_factory=list)  # apply to every section

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for sec in self.sections:
            if sec.heading:
                out += [f"## {sec.heading}", ""]
            out += [f"{line}  " for line in sec.meta]
            if sec.meta:
                out.append("")
            if sec.rows:
                out.append(tabulate([[as_cell(c).md for c in row] for row in sec.rows],
                                    headers=[as_cell(c).md for c in self.columns],
                                    tablefmt="github", disable_numparse=True))
            else:
                out.append(f"_{NO_RESULTS}._")
            out.append("")
            out += [f"- {n}" for n in sec.notes + self.notes]
            out.append("")
        return "\n".join(out).rstrip() + "\n"

    def to_latex(self) -> str:
        out = [f"% {self.title}. Generated by `python -m bench.report`; needs booktabs.", ""]
        for sec in self.sections:
            cells = [[as_cell(c) for c in row] for row in sec.rows]
            notes = sec.notes + self.notes
            if not cells or any(c.missing for row in cells for c in row):
                notes = notes + [f"--: {NO_RESULTS} for this cell."]
            caption = self.title + (f" ({sec.heading})" if sec.heading else "")
            out += [r"\begin{table}[ht]", r"\centering", r"\small",
                    rf"\caption{{{tex_escape(caption)}}}",
                    rf"\label{{tab:{_label(self.name, sec.heading)}}}",
                    r"\begin{tabular}{l" + "c" * (len(self.columns) - 1) + "}", r"\toprule",
                    " & ".join(as_cell(c).tex for c in self.columns) + r" \\", r"\midrule"]
            if cells:
                out += [" & ".join(c.tex for c in row) + r" \\" for row in cells]
            else:
                out.append(r"\multicolumn{" + str(len(self.columns)) + r"}{c}{--} \\")
            out += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip", r"\footnotesize"]
            out += [tex_escape(line) + r"\\" for line in sec.meta]
            out += [tex_escape(n) + r"\\" for n in notes]
            out += [r"\end{table}", ""]
        return "\n".join(out)

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{self.name}.md", out_dir / f"{self.name}.tex"]
        paths[0].write_text(self.to_markdown())
        paths[1].write_text(self.to_latex())
        return paths
