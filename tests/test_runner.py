"""Runner, results store and resume on the fake env (no simulator)."""

import json

import numpy as np
import pytest

from bench.policy import Policy
from bench.results import RunStore
from bench.runner import RunOptions, run
from bench.suites.fake import FakeSuite
from pruning.base import PruningMethod


def _policy(model):
    return Policy(model, PruningMethod(), count_flops=True)


def _suite(**kw):
    return FakeSuite(name="fake", max_steps=20, num_wait_steps=2, camera_size=64, **kw)


def test_episode_records_and_query_summaries(small_model, tmp_path):
    store = RunStore(tmp_path)
    recs = run(_suite(), _policy(small_model), store, RunOptions(trials=2, warmup=1), [0, 1])
    assert [r["episode_id"] for r in recs] == ["t00_i000_s7", "t00_i001_s7", "t01_i000_s7",
                                               "t01_i001_s7"]
    r = recs[0]
    assert r["status"] == "ok" and r["steps"] <= 20
    assert r["n_queries"] == -(-r["steps"] // 8)  # one query per chunk of 8
    assert r["latency_ms"]["n"] == r["n_queries"]
    assert set(r["latency_ms"]["stages_median"]) == {"vision", "decoder", "head", "method"}
    assert r["tokens"]["visual_total"] == 32 and r["tokens"]["visual_kept_mean"] == 32
    assert r["flops"]["total_mean"] > r["flops"]["decoder_mean"] > 0
    lines = (tmp_path / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["episode_id"] == "t00_i000_s7"
    q = [json.loads(x) for x in (tmp_path / "queries.jsonl").read_text().splitlines()]
    assert len(q) == sum(x["n_queries"] for x in recs)


def test_render_on_demand_has_same_physics_and_fewer_renders(small_model, tmp_path):
    a = run(_suite(), _policy(small_model), RunStore(tmp_path / "a"),
            RunOptions(trials=2, warmup=0), [0])
    b = run(_suite(), _policy(small_model), RunStore(tmp_path / "b"),
            RunOptions(trials=2, warmup=0, render="every_step"), [0])
    for x, y in zip(a, b, strict=True):
        assert (x["success"], x["steps"]) == (y["success"], y["steps"])
        assert x["renders"] == x["n_queries"] and y["renders"] == y["steps"]


def test_resume_skips_finished_and_equals_uninterrupted(small_model, tmp_path):
    full = run(_suite(), _policy(small_model), RunStore(tmp_path / "full"),
               RunOptions(trials=3, warmup=0), [0, 2])
    store = RunStore(tmp_path / "resumed")
    first = run(_suite(), _policy(small_model), store, RunOptions(trials=1, warmup=0), [0, 2])
    # a kill can tear the last line; resume must cope
    with open(store.episodes_path, "a") as f:
        f.write('{"episode_id": "t02_i001')
    second = run(_suite(), _policy(small_model), store, RunOptions(trials=3, warmup=0), [0, 2])
    assert len(first) == 2 and len(second) == 4
    third = run(_suite(), _policy(small_model), store, RunOptions(trials=3, warmup=0), [0, 2])
    assert third == []
    eps = {e["episode_id"]: e for e in store.episodes()}
    assert len(eps) == 6
    for r in full:
        e = eps[r["episode_id"]]
        assert (e["success"], e["steps"]) == (r["success"], r["steps"])


def test_episode_error_is_recorded_and_run_goes_on(small_model, tmp_path):
    store = RunStore(tmp_path)
    recs = run(_suite(fail_on=[[0, 1]]), _policy(small_model), store,
               RunOptions(trials=3, warmup=0), [0])
    assert [r["status"] for r in recs] == ["ok", "error", "ok"]
    assert "fake failure" in recs[1]["error"] and recs[1]["success"] is False


class NeedsPast(PruningMethod):
    needs_patches = True
    max_frame_back = 11

    def frames_needed(self):
        return [10]

    def before_llm(self, ctx, stream):
        self.seen = sorted(ctx.past_patches)


def test_past_frames_rendered_from_snapshots(small_model, tmp_path):
    m = NeedsPast()
    pol = Policy(small_model, m)
    run(_suite(), pol, RunStore(tmp_path), RunOptions(trials=1, warmup=0), [0])
    # at the query of step 16 the frame 10 steps back exists; at step 8, 8 back (clamped)
    assert m.seen == [10]
    suite = _suite()
    env = suite.make_env(0)
    env.reset(0, 7)
    snap = env.snapshot()
    img = env.render()
    env.step(np.array([1.0, 1, 1, 0, 0, 0, 1]))
    np.testing.assert_array_equal(env.render_snapshot(snap)["agentview"], img["agentview"])


def test_unknown_task_id_is_user_error():
    from bench.errors import UserError

    with pytest.raises(UserError, match="0..2"):
        _suite(tasks=[0, 7]).task_ids()


def test_save_frames_writes_kept_tokens_per_view_and_the_figure(small_model, tmp_path):
    from bench.report.figures import kept_tokens
    from bench.report.load import load_runs
    from pruning.base import PruningMethod as Base

    class KeepTwo(Base):  # keeps visual positions 1 and 20: patch 0 of view 0, 3 of view 1
        def before_llm(self, ctx, stream):
            import torch
            stream.keep_visual(torch.tensor([1, 20]))

    store = RunStore(tmp_path / "m" / "fake" / "keep2" / "default")
    recs = run(_suite(), Policy(small_model, KeepTwo()), store,
               RunOptions(trials=2, warmup=1, save_frames=1), [0])
    eps = sorted(p.name for p in (store.dir / "frames").iterdir())
    assert eps == [recs[0]["episode_id"]]  # only the first episode is saved
    files = sorted((store.dir / "frames" / eps[0]).glob("q*.npz"))
    assert len(files) == recs[0]["n_queries"]
    with np.load(files[0]) as z:
        assert int(z["grid"][0]) == 4 and z["agentview"].shape == (64, 64, 3)
        assert z["kept_agentview"].tolist() == [0] and z["kept_robot0_eye_in_hand"].tolist() == [3]
    (store.dir / "manifest.json").write_text(json.dumps(
        {"model": "m", "suite": "fake", "method": "keep2", "tag": "default", "alpha": None}))
    run_obj = next(r for r in load_runs(tmp_path) if r.method == "keep2")
    assert kept_tokens(run_obj, tmp_path / "fig").exists()


def test_resume_accepts_the_same_weights_under_another_name_only(tmp_path):
    """A run folder resumes when the identity matches; the weights count by their hash, not by
    how the file was named, and anything else that differs is refused."""
    from bench.errors import UserError

    def manifest(weights, sha, method="pruning.none.NoPruning"):
        return {"started": "t", "identity": {
            "model": {"name": "tiny_vla", "weights": weights, "seed": 0},
            "weights_sha256": sha, "method": {"_target_": method}, "alpha": None}}

    store = RunStore(tmp_path / "run")
    store.write_manifest(manifest("auto", "abc"))
    store.write_manifest(manifest("data/train/x.safetensors", "abc"))  # same weights: resumes
    assert len(json.loads((tmp_path / "run" / "manifest.json").read_text())["resumed"]) == 1
    before = (tmp_path / "run" / "manifest.json").read_text()
    store.write_manifest(manifest("auto", "abc"), pending=False)  # complete run: file unchanged
    assert (tmp_path / "run" / "manifest.json").read_text() == before
    with pytest.raises(UserError, match="different config"):  # still checked when complete
        store.write_manifest(manifest("auto", "def"), pending=False)
    with pytest.raises(UserError, match="different config"):
        store.write_manifest(manifest("auto", "def"))  # other weights
    with pytest.raises(UserError, match="different config"):
        store.write_manifest(manifest("auto", "abc", method="pruning.fastv.FastV"))

    other = RunStore(tmp_path / "nohash")
    other.write_manifest(manifest("a.safetensors", None))
    with pytest.raises(UserError, match="different config"):  # no hash: names must match
        other.write_manifest(manifest("b.safetensors", None))


def test_resume_on_another_machine_is_recorded(tmp_path):
    """Each writing process leaves its machine and commit in `sessions`; the report lists
    every machine behind a run, not only the first writer's."""
    from bench.report.results import Results

    ident = {"model": {"name": "tiny_vla"}, "weights_sha256": "abc", "alpha": None}
    store = RunStore(tmp_path / "run")
    store.write_manifest({"started": "t0", "identity": ident, "git_commit": "c1",
                          "machine": {"cpu": "Intel X", "cores": 2, "device": "cpu"}})
    store.write_manifest({"started": "t1", "identity": ident, "git_commit": "c2",
                          "machine": {"cpu": "AMD Y", "cores": 2, "device": "cpu"}})
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["machine"]["cpu"] == "Intel X"  # the first writer's, as before
    assert [s["machine"]["cpu"] for s in man["sessions"]] == ["Intel X", "AMD Y"]
    assert [s["git_commit"] for s in man["sessions"]] == ["c1", "c2"]

    class R:
        manifest = man
    assert Results.describe_machines([R()]) == "Intel X (2 cores, cpu); AMD Y (2 cores, cpu)"


def test_goal_tracker_keeps_ever_and_final_per_conjunct():
    from bench.runner import GoalTracker

    g = GoalTracker()
    assert g.summary() is None
    g.update(None)  # an env that cannot tell changes nothing
    assert g.summary() is None
    for status in ([False, True], [True, True], [False, False], [False, True]):
        g.update(status)
    # conjunct 0 reached and undone; conjunct 1 held from the start (undone, redone): neither
    # counts as achieved
    assert g.summary() == {"n": 2, "initial": [False, True], "ever": [True, True],
                           "final": [False, True], "ever_count": 2, "final_count": 1,
                           "open_count": 1, "achieved_count": 0}
    g2 = GoalTracker()
    for status in ([False, True], [True, True]):
        g2.update(status)
    assert (g2.summary()["open_count"], g2.summary()["achieved_count"]) == (1, 1)


def test_episodes_record_goal_conjuncts(small_model, tmp_path):
    recs = run(_suite(tolerance=0.3), _policy(small_model), RunStore(tmp_path),
               RunOptions(trials=3, warmup=0), [0, 1, 2])
    for r in recs:
        g = r["goals"]
        assert g["n"] == 2
        assert all(e or not f for e, f in zip(g["ever"], g["final"], strict=True))  # final => ever
        # the fake env's second conjunct is its success condition
        assert g["final"][1] == r["success"]


def test_summary_counts_sub_goals_only_for_multi_step_goals():
    from bench.summary import summary_frame

    def ep(task, success, final):
        return {"task_id": task, "status": "ok", "success": success,
                "goals": {"n": len(final), "ever": final, "final": final,
                          "ever_count": sum(final), "final_count": sum(final)}}

    df = summary_frame([ep(0, False, [True, False]), ep(0, True, [True, True]),
                        ep(1, False, [False])]).set_index("task")
    assert df.loc[0, "sub-goals reached (end)"] == "3/4"
    assert df.loc[1, "sub-goals reached (end)"] == "-"  # one conjunct: success says it all
    assert df.loc["all", "sub-goals reached (end)"] == "3/5"
    assert "sub-goals reached (end)" not in summary_frame([ep(1, False, [False])])
