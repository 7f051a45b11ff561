"""The report stage on a small synthetic results tree (no simulator, no model).

Tree: model tiny_vla; `none` (tag alpha=1.0) on libero_spatial (7/10) and libero_object
(4/4); `specprune` (tag alpha=0.8) on libero_spatial only: 9 ok episodes (2 successes) plus
one error episode. Paired on spatial: b = 1 (episode 7), c = 6 (episodes 1-6) -> p = 0.125.
"""

import json

import numpy as np
import pytest

from bench.report.cli import build_report, main
from bench.report.load import load_latency, load_runs, parse_tag
from bench.report.results import Results
from bench.report.tables import find_variant, main_table, paired_table

MODEL = "tiny_vla"
MACHINE = {"cpu": "Test CPU", "cores": 2, "device": "cpu"}


def episode(i, success, status="ok", latency=100.0, flops=1e9, kept=60.0, modes=None):
    return {
        "episode_id": f"t{i // 5:02d}_i{i % 5:03d}_s7", "suite": "x", "task_id": i // 5,
        "instruction": "pick", "init_state_idx": i % 5, "seed": 7, "status": status,
        "error": None if status == "ok" else "RuntimeError: boom", "success": success,
        "steps": 50, "max_steps": 220, "n_queries": 7,
        "latency_ms": {"median": latency, "mean": latency, "p90": latency, "n": 6,
                       "stages_median": {"vision": 10.0, "decoder": latency - 20,
                                         "head": 5.0, "method": 5.0}},
        "flops": {"decoder_mean": flops, "total_mean": 1.5 * flops},
        "tokens": {"visual_total": 200, "visual_kept_mean": kept,
                   "kept_per_layer_mean": [200.0, 200.0, kept, kept]},
        "method_stats": {"fine_frac": 0.5, "modes": modes or [], "recall_mean": 0.9},
        "wall_s": 10.0,
    }


def write_run(root, suite, method, tag, episodes, params=None, extra_lines=""):
    folder = root / "runs" / MODEL / suite / method / tag
    folder.mkdir(parents=True)
    overrides = parse_tag(tag)
    manifest = {"model": MODEL, "suite": suite, "method": method,
                "alpha": overrides.get("alpha", 0.8),
                "method_params": params or {}, "tag": tag, "config": {},
                "git_commit": "abc1234567", "packages": {}, "machine": MACHINE,
                "started": "2026-11-22T00:00:00"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    lines = [json.dumps(e | {"suite": suite}) for e in episodes]
    (folder / "episodes.jsonl").write_text("\n".join(lines) + "\n" + extra_lines)
    return folder


SPEC_DEFAULTS = {"static": True, "dynamic_layers": True, "controller": True,
                 "use_global": True, "layer_weighting": "entropy", "vt_threshold": 0.5,
                 "vr_threshold": 0.2}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "results"
    none_spatial = [episode(i, i < 7) for i in range(10)]
    write_run(root, "libero_spatial", "none", "alpha=1.0", none_spatial)
    write_run(root, "libero_object", "none", "alpha=1.0", [episode(i, True) for i in range(4)])
    spec = [episode(i, i in (0, 7), latency=80.0, flops=0.43e9, kept=50.0,
                    modes=["coarse", "fine", "fine", "coarse"]) for i in range(9)]
    spec.append(episode(9, False, status="error"))
    # A broken last line (a crash mid-write) must be skipped, not crash the report.
    write_run(root, "libero_spatial", "specprune", "alpha=0.8", spec, SPEC_DEFAULTS,
              extra_lines='{"episode_id": "t01_i0')
    # Ablation and alpha-sweep runs: never main-table rows.
    write_run(root, "libero_spatial", "specprune", "alpha=0.8,controller=false",
              [episode(i, i < 3, latency=78.0) for i in range(10)],
              SPEC_DEFAULTS | {"controller": False})
    write_run(root, "libero_spatial", "specprune", "alpha=0.6",
              [episode(i, i < 1, latency=70.0, kept=40.0) for i in range(10)], SPEC_DEFAULTS)
    return root


def results(root, **kw):
    runs = load_runs(root / "runs")
    return Results(runs, load_latency(root / "latency", {MODEL}, {r.suite for r in runs}), **kw)


def row(table, label_start):
    rows = [r for r in table.sections[0].rows if str(r[0]).startswith(label_start)]
    assert len(rows) == 1, [r[0] for r in table.sections[0].rows]
    return [c if isinstance(c, str) else c.md for c in rows[0]]


def test_main_table_cells(tree):
    table = main_table(results(tree))
    header = table.columns
    none = dict(zip(header, row(table, "Baseline"), strict=True))
    spec = dict(zip(header, row(table, "SpecPrune"), strict=True))
    # 7/10 -> Wilson [39.7, 89.2]; 4/4 -> [51.0, 100.0].
    assert none["Spatial"] == "70.0 [39.7, 89.2] n=10"
    assert none["Object"] == "100.0 [51.0, 100.0] n=4"
    # 2 of 9 ok episodes; the error episode is counted apart, not as a failure.
    assert spec["Spatial"] == "22.2 [6.3, 54.7] n=9, 1 err"
    assert spec["Method"] == "SpecPrune (α=0.8)"
    # Missing suites say so; the average is not computed from a subset of suites.
    assert spec["Object"] == "no results"
    assert spec["Goal"] == none["Goal"] == "no results"
    assert none["Avg SR"] == "incomplete (2/4 suites)"
    # No latency benchmark: speedup and FLOPs fall back to episodes (marked with a dagger).
    assert spec["Avg speedup"] == "1.25×† (1/4 suites)"
    assert spec["LM FLOPs"] == "43%† (1/4 suites)"
    assert none["Avg speedup"] == "1.00× (2/4 suites)"
    assert row(table, "FastV")[1:] == ["no results"] * 8


def test_main_table_files_and_latex(tree, tmp_path):
    out = build_report(tree, tmp_path / "tables", tmp_path / "figures")
    md = (tmp_path / "tables" / "main.md").read_text()
    assert "70.0 [39.7, 89.2] n=10" in md and "no results" in md
    assert "Test CPU (2 cores, cpu)" in md and "Model: tiny_vla" in md
    tex = (tmp_path / "tables" / "main.tex").read_text()
    assert r"70.0 {\scriptsize [39.7, 89.2] n=10}" in tex
    assert " & -- & " in tex and "--: no results for this cell." in tex
    assert "alpha=0.8,controller=false" not in md.split("Tags used:")[1]
    assert len(out["tables"]) == 2 * 13  # no simpler_* results -> no SimplerEnv table
    assert not (tmp_path / "tables" / "main_simpler.md").exists()


def test_paired_difference_vs_none(tree):
    rows = [[c if isinstance(c, str) else c.md for c in r]
            for r in paired_table(results(tree)).sections[0].rows]
    assert rows == [
        ["SpecPrune", "Spatial", "9", "22.2", "77.8", "-55.6", "1", "6", "0.125"],
        # Object: specprune has no run there, so the pooled row holds spatial's pairs only.
        ["SpecPrune", "all LIBERO (pooled)", "9", "22.2", "77.8", "-55.6", "1", "6", "0.125"]]


def test_replay_benchmark_is_preferred_for_speedup_and_flops(tree):
    latency = tree / "latency"
    latency.mkdir()
    (latency / f"{MODEL}_libero_spatial.csv").write_text(
        "method,tag,alpha,median_ms,p10_ms,p90_ms,speedup,decoder_flops_pct,total_flops_pct,"
        "visual_kept_mean,overhead_pct,n_obs,n_repeats\n"
        "none,alpha=1.0,1.0,100,95,105,1.0,100,100,200,0,50,5\n"
        "specprune,alpha=0.8,0.8,68.5,66,70,1.46,41,55,50,4.5,50,5\n"
        "fastv,default,,60.0,58,62,1.667,35,50,48,2.0,50,5\n")
    (latency / f"{MODEL}_libero_spatial.json").write_text(json.dumps({
        "rows": [{"method": "specprune", "tag": "alpha=0.8",
                  "stages_median": {"vision": 9, "decoder": 50, "head": 6, "method": 3.1},
                  "stages_mean": {"vision": 9.5, "decoder": 51, "head": 6, "method": 3.0},
                  "latency_mean_ms": 69.5,
                  "method_parts_mean": {"patch_extract": 0.25, "similarity": 0.5,
                                        "scores": 0.4, "entropy": 0.05, "topk": 0.8,
                                        "prune": 0.3}},
                 {"method": "fastv", "tag": "default",
                  "stages_median": {"vision": 9, "decoder": 47, "head": 2, "method": 2.0}},
                 {"method": "none", "tag": "alpha=1.0", "latency_mean_ms": 101.0,
                  "stages_mean": {"vision": 9, "decoder": 90, "head": 2, "method": 0.0},
                  "method_parts_mean": {}}],
        "machine": MACHINE}))
    res = results(tree)
    spec = dict(zip(main_table(res).columns, row(main_table(res), "SpecPrune"), strict=True))
    assert spec["Avg speedup"] == "1.46× (1/4 suites)"
    assert spec["LM FLOPs"] == "41% (1/4 suites)"
    # The ablation run is not in the benchmark: its speedup falls back to episodes.
    ablation = find_variant(res, MODEL, "libero_spatial", {"controller": False})
    assert ablation.tag == "alpha=0.8,controller=false"
    assert res.speedup(ablation).value == pytest.approx(100 / 78)
    from bench.report.tables import overhead_table
    over = row(overhead_table(res, "libero_spatial"), "SpecPrune")
    assert over[1:] == ["9.0", "50.0", "6.0", "3.1", "68.5", "4.5", "1.46×", "replay"]
    # FastV has no rollout run: the per-stage table takes the replay row, marked
    over = row(overhead_table(res, "libero_spatial"), "FastV‡")
    assert over[1:] == ["9.0", "47.0", "2.0", "2.0", "60.0", "2.0", "1.67×", "replay"]
    # Components of the method stage (means; 'Other' = the stage minus the timed parts)
    from bench.report.tables import overhead_parts_table
    parts = overhead_parts_table(res, "libero_spatial")
    assert [r[0] for r in parts.sections[0].rows] == ["SpecPrune (alpha=0.8)"]
    cells = dict(zip(parts.columns, row(parts, "SpecPrune (alpha=0.8)"), strict=True))
    assert cells["Similarity + selection ms"] == "0.50" and cells["Top-k sorting ms"] == "0.80"
    assert cells["Other ms"] == "0.70"  # 3.0 - (0.25 + 0.5 + 0.4 + 0.05 + 0.8 + 0.3)
    assert cells["Method ms"] == "3.00" and cells["Total ms"] == "69.5"
    assert cells["Baseline ms"] == "101.0"
    # FastV has no rollout run: the latency table shows its replay numbers, marked as such
    from bench.report.tables import latency_table
    lat = latency_table(res)
    fastv = dict(zip(lat.columns, row(lat, "FastV"), strict=True))
    assert fastv["Spatial"] == "60.0 ms‡ / 1.67×‡" and fastv["Object"] == "no results"


def test_overhead_parts_has_one_section_per_replay_benchmark(tree):
    """Each suite's replay benchmark gets its own section (its own machine), the requested
    suite first; a suite's parts come from its own benchmark only."""
    latency = tree / "latency"
    latency.mkdir()
    for suite, method_ms, cpu in (("libero_object", 3.4, "CPU B"),
                                  ("libero_spatial", 1.5, "CPU A")):
        (latency / f"{MODEL}_{suite}.csv").write_text(
            "method,tag,alpha,median_ms,speedup\nnone,alpha=1.0,1.0,100,1.0\n"
            "specprune,alpha=0.8,0.8,60,1.67\n")
        (latency / f"{MODEL}_{suite}.json").write_text(json.dumps({
            "rows": [{"method": "specprune", "tag": "alpha=0.8", "latency_mean_ms": 61.0,
                      "stages_mean": {"method": method_ms},
                      "method_parts_mean": {"scores": 1.0, "topk": 0.25}},
                     {"method": "none", "tag": "alpha=1.0", "latency_mean_ms": 100.0,
                      "stages_mean": {"method": 0.0}, "method_parts_mean": {}}],
            "machine": {"cpu": cpu, "cores": 2, "device": "cpu"}}))
    from bench.report.tables import overhead_parts_table
    parts = overhead_parts_table(results(tree), "libero_spatial")
    assert [s.heading for s in parts.sections] == [f"Model {MODEL}: Spatial (libero_spatial)",
                                                   f"Model {MODEL}: Object (libero_object)"]
    cells = [dict(zip(parts.columns, [c if isinstance(c, str) else c.md for c in s.rows[0]],
                      strict=True)) for s in parts.sections]
    assert cells[0]["Method ms"] == "1.50"
    assert cells[0]["Other ms"] == "0.25"  # 1.5 - (1.0 + 0.25)
    assert cells[1]["Method ms"] == "3.40"
    assert "CPU A" in parts.sections[0].meta[0] and "CPU B" in parts.sections[1].meta[0]


def test_row_selection_rule(tree):
    res = results(tree)
    # A second `none` run at another alpha: alpha 1.0 still wins.
    write_run(tree, "libero_spatial", "none", "alpha=0.8", [episode(0, False)])
    res = results(tree)
    assert res.main_run(MODEL, "libero_spatial", "none").tag == "alpha=1.0"
    assert res.main_run(MODEL, "libero_spatial", "specprune").tag == "alpha=0.8"
    res = results(tree, main_tags={"specprune": "alpha=0.6"})
    assert res.main_run(MODEL, "libero_spatial", "specprune").tag == "alpha=0.6"
    res = results(tree, main_alpha=0.6)
    assert res.main_run(MODEL, "libero_spatial", "specprune").tag == "alpha=0.6"


def test_ablation_tables_pick_their_runs(tree, tmp_path):
    build_report(tree, tmp_path / "tables", tmp_path / "figures")
    techniques = (tmp_path / "tables" / "ablation_techniques.md").read_text()
    assert "alpha=0.8,controller=false" in techniques
    assert "30.0 [10.8, 60.3] n=10" in techniques  # 3/10
    alpha = (tmp_path / "tables" / "ablation_alpha.md").read_text()
    assert "SpecPrune α=0.6" in alpha and "10.0 [1.8, 40.4] n=10" in alpha
    retention = (tmp_path / "tables" / "retention.md").read_text()
    assert "| 0.6 | 200" in retention.replace("  ", " ").replace("  ", " ")
    thresholds = (tmp_path / "tables" / "ablation_thresholds.md").read_text()
    assert "22.2 [6.3, 54.7] n=9, 1 err" in thresholds  # v_t 0.5, v_r 0.2 = the full run


def test_figures_written(tree, tmp_path):
    spec = tree / "runs" / MODEL / "libero_spatial" / "specprune" / "alpha=0.8"
    frames = spec / "frames" / "t00_i000_s7"
    frames.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for q in range(3):
        np.savez(frames / f"q{q:03d}.npz",
                 agentview=rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                 robot0_eye_in_hand=rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                 kept_agentview=np.array([0, 5, 15]), kept_robot0_eye_in_hand=np.array([1, 2]),
                 grid=np.array(4))
    queries = [{"episode_id": "t00_i000_s7", "query_idx": q, "step": 8 * q,
                "latency_ms": 80.0, "stages": {}, "flops_decoder": 1.0, "flops_total": 2.0,
                "kept_per_layer": [200, 200, 50 + q, 40],
                "method": {"mode": "fine" if q % 2 else "coarse", "kept_visual_idx": {}}}
               for q in range(5)]
    (spec / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    out = build_report(tree, tmp_path / "tables", tmp_path / "figures")
    names = {p.name for p in out["figures"]}
    assert names == {"success_vs_speedup_tiny_vla.png", "alpha_sweep_tiny_vla.png",
                     "controller_modes_tiny_vla.png",
                     "kept_tokens_tiny_vla_libero_spatial_specprune_alpha=0.8.png"}
    for p in out["figures"]:
        assert p.stat().st_size > 1000
    assert "kept_tokens_tiny_vla" in (tmp_path / "tables" / "index.md").read_text()


def test_empty_results_still_write_tables(tmp_path, capsys):
    assert main(["--results", str(tmp_path / "results")]) == 0
    assert "No results" in capsys.readouterr().out
    md = (tmp_path / "results" / "tables" / "main.md").read_text()
    assert "No results exist" in md and "| Baseline (none) | no results" in md
    assert "%" not in md.split("|---")[1].split("\n- ")[0].replace("95%", "")
    assert not (tmp_path / "results" / "figures").exists()


def test_simpler_table_only_with_simpler_results(tree, tmp_path):
    write_run(tree, "simpler_put_carrot", "none", "alpha=1.0", [episode(0, True)])
    out = build_report(tree, tmp_path / "tables", tmp_path / "figures")
    assert tmp_path / "tables" / "main_simpler.md" in out["tables"]
    md = (tmp_path / "tables" / "main_simpler.md").read_text()
    assert "put_carrot" in md and "100.0 [20.7, 100.0] n=1" in md


def test_bad_main_tag_is_a_user_error(tmp_path, capsys):
    assert main(["--results", str(tmp_path), "--main-tag", "fastv"]) == 2
    assert "METHOD=TAG" in capsys.readouterr().err


def test_tags_as_the_runner_writes_them():
    assert parse_tag("default") == {}
    assert parse_tag("alpha=1,controller=False,prune_layers=[3, 5],max_steps=40") == {
        "alpha": 1, "controller": False, "prune_layers": "[3, 5]", "max_steps": 40}


def test_baseline_without_alpha_and_a_short_budget_run(tree):
    # The runner tags a method that ignores alpha "default" and records alpha null; a run
    # with a reduced step budget is not a default-parameter run.
    write_run(tree, "libero_goal", "none", "default", [episode(i, i < 2) for i in range(4)])
    manifest = tree / "runs" / MODEL / "libero_goal" / "none" / "default" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"alpha": 0.8', '"alpha": null'))
    write_run(tree, "libero_goal", "specprune", "alpha=0.8,max_steps=40", [episode(0, True)])
    write_run(tree, "libero_goal", "divprune", "default", [episode(0, True)])
    (tree / "runs" / MODEL / "libero_goal" / "divprune" / "default" / "manifest.json"
     ).write_text(json.dumps({"alpha": None, "machine": MACHINE}))
    res = results(tree)
    assert res.main_run(MODEL, "libero_goal", "divprune").tag == "default"
    assert res.main_run(MODEL, "libero_goal", "none").tag == "default"
    assert res.main_run(MODEL, "libero_goal", "specprune") is None
    goal = dict(zip(main_table(res).columns, row(main_table(res), "Baseline"), strict=True))
    assert goal["Goal"] == "50.0 [15.0, 85.0] n=4"


def test_subgoal_table_counts_conjuncts_of_multi_step_goals(tmp_path):
    from bench.report.tables import subgoals_table

    def with_goals(i, success, final, ever, open_=2, achieved=None):
        e = episode(i, success)
        e["goals"] = {"n": 2, "final": [], "ever": [], "final_count": final, "ever_count": ever,
                      "open_count": open_, "achieved_count": final if achieved is None
                      else achieved}
        return e

    root = tmp_path / "results"
    # libero_10: 4 episodes, one success (2/2 at end); two stop half way; one reaches a
    # conjunct at a query and undoes it -> at end 2 + 1 + 1 + 0 = 4 of 8, reached 2+1+1+1 = 5.
    write_run(root, "libero_10", "none", "default",
              [with_goals(0, True, 2, 2), with_goals(1, False, 1, 1),
               with_goals(2, False, 1, 1, open_=1, achieved=0), with_goals(3, False, 0, 1)])
    # A suite whose episodes predate the goal records: no row.
    write_run(root, "libero_spatial", "none", "default", [episode(i, True) for i in range(3)])
    table = subgoals_table(results(root))
    cells = row(table, "Baseline")
    # episode 2's held conjunct held from the start: achieved 2 + 1 + 0 + 0 of 2 + 2 + 1 + 2 open
    assert cells == ["Baseline (none)", "Long", "4", "25.0", "3/7 (42.9%)", "4/8 (50.0%)",
                     "5/8 (62.5%)", "3"]
    assert len(table.sections[0].rows) == 1
    empty = subgoals_table(results(tmp_path / "nothing"))
    assert "No main run records multi-conjunct goals yet." in empty.sections[0].notes


def test_per_task_table_counts_and_marks_tasks_a_method_breaks(tmp_path):
    from bench.report.tables import per_task_table

    def ep(task, init, success):
        e = episode(0, success)
        e.update(episode_id=f"t{task}_i{init}", task_id=task, init_state_idx=init,
                 instruction=f"do task {task}")
        return e

    root = tmp_path / "results"
    # none: task 0 10/10, task 1 3/10. fastv: task 0 0/10 (10 discordant pairs, exact
    # McNemar p = 2 / 2**10 ~ 0.002 -> marked), task 1 5/10 (b = 2, c = 0, p = 0.5 -> not).
    write_run(root, "libero_goal", "none", "default",
              [ep(0, i, True) for i in range(10)] + [ep(1, i, i < 3) for i in range(10)])
    write_run(root, "libero_goal", "fastv", "alpha=0.8",
              [ep(0, i, False) for i in range(10)] + [ep(1, i, i < 5) for i in range(10)])
    # a suite with task 0 only: its task-1 cell says there are no results
    write_run(root, "libero_spatial", "none", "default", [ep(0, i, i < 4) for i in range(5)])
    table = per_task_table(results(root))
    assert table.columns == ["Method", "T0", "T1", "All"]
    spatial, goal = table.sections  # LIBERO order: spatial before goal
    assert "Spatial" in spatial.heading and "Goal" in goal.heading
    cells = [[c if isinstance(c, str) else c.md for c in r] for r in goal.rows]
    assert cells == [["Baseline (none)", "10/10", "3/10", "13/20"],
                     ["FastV", "0/10*", "5/10", "5/20"]]
    assert spatial.rows[0][1] == "4/5" and spatial.rows[0][2].missing
    assert "T1: do task 1" in goal.notes
    empty = per_task_table(results(tmp_path / "nothing"))
    assert "No results exist under results/runs yet." in empty.sections[0].notes


def test_main_table_marks_a_partial_run_and_keeps_it_out_of_the_average(tmp_path):
    root = tmp_path / "results"
    for suite in ("libero_spatial", "libero_object", "libero_goal"):
        folder = write_run(root, suite, "none", "default",
                           [episode(i, i < 5) for i in range(10)])
        m = json.loads((folder / "manifest.json").read_text())
        m["config"] = {"trials": 1, "tasks": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}
        (folder / "manifest.json").write_text(json.dumps(m))
    # libero_10 started for 10 tasks x 10 trials, 35 episodes recorded so far
    folder = write_run(root, "libero_10", "none", "default", [episode(i, i < 7)
                                                               for i in range(35)])
    m = json.loads((folder / "manifest.json").read_text())
    m["config"] = {"trials": 10, "tasks": None}
    (folder / "manifest.json").write_text(json.dumps(m))
    res = results(root)
    assert res.main_run(MODEL, "libero_10", "none").expected_episodes == 100
    cells = dict(zip(main_table(res).columns, row(main_table(res), "Baseline"), strict=True))
    assert cells["Long"].endswith("n=35 (partial: 35/100)")
    assert cells["Spatial"] == "50.0 [23.7, 76.3] n=10"  # finished: no mark
    assert cells["Avg SR"].startswith("incomplete (3/4 suites)")
    # once all 100 are in, the average covers the four suites
    lines = [json.dumps(episode(i, False) | {"suite": "libero_10"}) for i in range(35, 100)]
    with open(folder / "episodes.jsonl", "a") as f:
        f.write("\n".join(lines) + "\n")
    cells = dict(zip(main_table(results(root)).columns,
                     row(main_table(results(root)), "Baseline"), strict=True))
    assert cells["Long"] == "7.0 [3.4, 13.7] n=100"
    assert cells["Avg SR"] == "39.2 (n=130)"


def test_success_error_bars_at_zero_percent(tmp_path):
    from bench.report.figures import _sr_and_err

    root = tmp_path / "results"
    write_run(root, "libero_10", "none", "default", [episode(i, False) for i in range(24)])
    res = results(root)
    sr, (below, above) = _sr_and_err(res, res.main_run(MODEL, "libero_10", "none"))
    assert sr == 0.0 and below == 0.0 and 13.0 < above < 14.5  # Wilson upper end, n = 24
    out = build_report(root, tmp_path / "tables", tmp_path / "figures")
    assert any(p.name.startswith("success_vs_speedup") for p in out["figures"])
