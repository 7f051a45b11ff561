"""Measure SpecPrune on the real-size tiny_vla: visual tokens kept per decoder layer at several
alphas and the method stage vs the policy latency, on fake-suite observations.

    python -m scripts.specprune_measure [--alphas 0.6 0.8 1.0] [--episodes 2] [--threads 1]

Each episode is run through the real runner (past frames from snapshots, controller from the
executed actions); `none` runs on the same episodes for the latency reference. Prints a table
(Markdown) of the mean kept count per layer (pruned queries only), the median method stage and
the median latency.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.6, 0.8, 1.0])
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=80)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    from bench.models.tiny_vla import TinyVLAAdapter
    from bench.policy import Policy
    from bench.results import RunStore
    from bench.runner import RunOptions, run
    from bench.suites.fake import FakeSuite
    from pruning.none import NoPruning
    from pruning.specprune import SpecPrune

    model = TinyVLAAdapter()
    suite = FakeSuite(name="fake", max_steps=args.max_steps, num_wait_steps=2,
                      camera_size=model.cfg.image_size)
    rows = []
    methods = [("none", NoPruning())] + [(f"specprune a={a:g}", SpecPrune(alpha=a))
                                         for a in args.alphas]
    for name, method in methods:
        pol = Policy(model, method, count_flops=False)
        with tempfile.TemporaryDirectory() as d:
            run(suite, pol, RunStore(d), RunOptions(trials=args.episodes, warmup=3),
                list(range(min(3, args.episodes))))
            qs = [json.loads(x) for x in open(f"{d}/queries.jsonl")]
        pruned = [q for q in qs if q["method"].get("pruned", True)]
        kept = np.mean([q["kept_per_layer"] for q in pruned], axis=0)
        lat = np.median([q["latency_ms"] for q in pruned])
        meth = np.median([q["stages"]["method"] for q in pruned])
        rec = [q["method"]["recall"] for q in pruned if q["method"].get("recall") == q[
            "method"].get("recall") and "recall" in q["method"]]
        fine = [q["method"]["mode"] == "fine" for q in pruned if "mode" in q["method"]]
        rows.append((name, len(pruned), kept, lat, meth, np.mean(rec) if rec else float("nan"),
                     np.mean(fine) if fine else float("nan")))
    total = rows[0][2].sum()
    print("| method | queries | visual kept per layer | mean kept | % of none (token-layers) "
          "| median latency ms | median method ms | method % | recall | fine frac |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, n, kept, lat, meth, rec, fine in rows:
        print(f"| {name} | {n} | {' '.join(f'{k:.1f}' for k in kept)} | {kept.mean():.1f} | "
              f"{100 * kept.sum() / total:.1f} | {lat:.1f} | {meth:.2f} | "
              f"{100 * meth / lat:.1f} | {rec:.2f} | {fine:.2f} |")


if __name__ == "__main__":
    main()
