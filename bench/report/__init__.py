"""Report stage: results files -> Markdown/LaTeX tables and PNG figures.

    python -m bench.report            (or: make tables)

Reads only results/runs/{model}/{suite}/{method}/{tag}/ (manifest.json, episodes.jsonl,
optional queries.jsonl and frames/) and results/latency/{model}_{suite}.{csv,json}; writes
results/tables/*.md, *.tex and results/figures/*.png. See bench/report/results.py for the
rule that picks each method's main-table row.
"""

from bench.report.cli import build_report, main

__all__ = ["main", "build_report"]
