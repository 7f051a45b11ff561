"""Demo format: write/read round trip, stats, normalisation inverse, resume bookkeeping."""

import json

import h5py
import numpy as np
import pytest

from bench.data import demos as D


def _synthetic(n=20, f=7, h=16, seed=0):
    rng = np.random.default_rng(seed)
    actions = np.clip(rng.normal(0, 0.5, (n, 7)), -1, 1).astype(np.float32)
    actions[:, 6] = np.where(rng.random(n) > 0.5, 1.0, -1.0)
    proprio = rng.normal(0, 1, (n, 8)).astype(np.float32)
    steps = np.arange(0, n, 3, dtype=np.int32)[:f]
    imgs = rng.integers(0, 255, (len(steps), h, h, 3), dtype=np.uint8)
    return actions, proprio, steps, imgs


def _attrs(task_id=3, init=12, seed=7):
    return {"suite": "libero_spatial", "task_id": task_id, "instruction": "put the bowl",
            "init_state_idx": init, "seed": seed, "camera_size": 16, "image_every": 3,
            "success": True, "expert_version": "test"}


def test_round_trip(tmp_path):
    actions, proprio, steps, imgs = _synthetic()
    path = D.demo_path(tmp_path, "libero_spatial", 3, 12, 7)
    assert path.name == "demo_i12_s7.hdf5" and path.parent.name == "task03"
    D.write_demo(path, actions=actions, proprio=proprio, image_steps=steps, agentview=imgs,
                 wrist=imgs[:, ::-1], attrs=_attrs())
    assert path.exists() and not path.with_name(path.name + ".tmp").exists()
    d = D.load_demo(path)
    assert d["steps"] == len(actions) and d["success"] is True or d["success"] == 1
    assert d["instruction"] == "put the bowl" and d["task_id"] == 3 and d["seed"] == 7
    assert d["actions"].dtype == np.float32 and np.array_equal(d["actions"], actions)
    assert np.array_equal(d["proprio"], proprio)
    assert d["image_steps"].dtype == np.int32 and np.array_equal(d["image_steps"], steps)
    assert d["agentview"].dtype == np.uint8 and np.array_equal(d["agentview"], imgs)
    assert np.array_equal(d["wrist"], imgs[:, ::-1])
    with h5py.File(path) as f:
        assert f["agentview"].compression in ("lzf", "gzip")
    assert D.iter_demo_files(tmp_path, ["libero_spatial"]) == [path]
    assert D.iter_demo_files(tmp_path, "libero_object") == []


def test_stats_and_normalisation_inverse(tmp_path):
    paths = []
    for k in range(3):
        actions, proprio, steps, imgs = _synthetic(seed=k)
        p = D.demo_path(tmp_path, "libero_object", k, 10 + k, 7)
        D.write_demo(p, actions=actions, proprio=proprio, image_steps=steps, agentview=imgs,
                     wrist=imgs, attrs=_attrs(task_id=k, init=10 + k))
        paths.append(p)
    stats = D.compute_stats(paths)
    for key in ("actions", "proprio"):
        for s in D.STAT_KEYS:
            assert len(stats[key][s]) == (7 if key == "actions" else 8)
    allact = np.concatenate([D.load_demo(p, images=False)["actions"] for p in paths])
    assert np.allclose(stats["actions"]["q01"], np.percentile(allact, 1, axis=0))
    D.save_stats(stats, tmp_path / "stats.json")
    stats = D.load_stats(tmp_path / "stats.json")
    a = allact
    na = D.normalize_actions(a, stats)
    assert na.min() >= -1 and na.max() <= 1
    assert np.array_equal(na[:, 6], a[:, 6])
    back = D.unnormalize_actions(na, stats)
    lo, hi = np.array(stats["actions"]["q01"]), np.array(stats["actions"]["q99"])
    inside = np.all((a[:, :6] >= lo[:6]) & (a[:, :6] <= hi[:6]), axis=1)
    assert inside.sum() > len(a) // 2
    np.testing.assert_allclose(back[inside, :6], a[inside, :6], atol=1e-5)
    assert set(np.unique(back[:, 6])) <= {-1.0, 1.0}
    assert np.array_equal(D.unnormalize_actions(np.array([[0, 0, 0, 0, 0, 0, 0.3]]), stats)[0, 6:],
                          [1.0])
    p = np.concatenate([D.load_demo(x, images=False)["proprio"] for x in paths])
    np_ = D.normalize_proprio(p, stats)
    ok = np.all(np.abs(np_) < 1, axis=1)
    np.testing.assert_allclose(D.unnormalize_proprio(np_, stats)[ok], p[ok], atol=1e-4)


def test_attempts_log_resume(tmp_path):
    from scripts.collect_demos import parse_range

    assert parse_range("10-12,15") == [10, 11, 12, 15]
    D.append_attempt(tmp_path, "libero_goal", {"task_id": 1, "init_state_idx": 10, "seed": 7,
                                               "success": False, "steps": 300, "wall_s": 4.0})
    D.append_attempt(tmp_path, "libero_goal", {"task_id": 1, "init_state_idx": 11, "seed": 7,
                                               "success": True, "steps": 120, "wall_s": 3.0})
    with open(D.attempts_path(tmp_path, "libero_goal"), "a") as f:
        f.write('{"task_id": 1, "init_st')  # a line cut by a kill
    keys = D.attempted_keys(tmp_path, "libero_goal")
    assert keys == {(1, 10, 7), (1, 11, 7)}
    assert json.loads(D.attempts_path(tmp_path, "libero_goal").read_text().splitlines()[0])


def test_collector_skips_recorded_attempts(tmp_path, monkeypatch):
    """A rerun of the collector makes no attempt already in attempts.jsonl."""
    import scripts.collect_demos as C

    for i in (10, 11):
        D.append_attempt(tmp_path, "libero_spatial", {"task_id": 0, "init_state_idx": i,
                                                      "seed": 7, "success": i == 10,
                                                      "steps": 5, "wall_s": 0.1})
    made = []

    class FakeEnv:
        instruction = "x"

        def __init__(self, *a, **k):
            pass

        def close(self):
            pass

    def fake_record(env, expert_cls, init, seed, image_every, max_steps, render=True, **kw):
        made.append(init)
        return {"success": False, "actions": np.zeros((3, 7))}

    import bench.suites.libero as L
    monkeypatch.setattr(L, "LiberoEnv", FakeEnv)
    monkeypatch.setattr(C, "record_episode", fake_record)
    C.main(["suite=libero_spatial", "inits=10-12", "tasks=0", f"root={tmp_path}"])
    assert made == [12]
    C.main(["suite=libero_spatial", "inits=10-12", "tasks=0", f"root={tmp_path}"])
    assert made == [12]
    assert len(D.read_attempts(tmp_path, "libero_spatial")) == 3


if __name__ == "__main__":
    pytest.main([__file__])


class _StepEnv:
    """Records what the robot was told to execute; 'succeeds' after n steps."""

    instruction = "x"

    def __init__(self, n=40):
        self.n, self.executed = n, []

    def reset(self, init, seed):
        self.executed = []

    def proprio(self):
        return np.zeros(8)

    def render(self):
        return {"agentview": np.zeros((4, 4, 3), np.uint8),
                "robot0_eye_in_hand": np.zeros((4, 4, 3), np.uint8)}

    def step(self, a):
        self.executed.append(np.array(a))
        return len(self.executed) >= self.n


class _ConstExpert:
    def __init__(self, env):
        pass

    def reset(self):
        pass

    def act(self):
        return np.array([0.1, -0.2, 0.3, 0.0, 0.0, 0.05, -1.0])


def test_noise_injection_perturbs_execution_but_stores_the_experts_actions():
    import scripts.collect_demos as C

    env = _StepEnv()
    clean = C.record_episode(env, _ConstExpert, 0, 7, 3, 100)
    assert np.allclose(np.stack(env.executed), clean["actions"])  # no noise: executed = label
    ep = C.record_episode(env, _ConstExpert, 0, 7, 3, 100, action_noise=0.3, noise_rho=0.9,
                          rng=C.noise_rng(7, 0, 0))
    executed = np.stack(env.executed)
    assert np.allclose(ep["actions"], _ConstExpert(None).act())  # labels: the expert's
    noise = executed[:, :6] - ep["actions"][:, :6]
    assert np.all(executed[:, 6] == -1.0)  # gripper never perturbed
    assert np.all(np.abs(executed) <= 1.0)
    assert 0.15 < noise.std() < 0.45  # stationary std 0.3 (clipping and 40 samples aside)
    # correlated in time (rho 0.9): consecutive noise far more alike than independent draws
    lag1 = np.corrcoef(noise[1:].ravel(), noise[:-1].ravel())[0, 1]
    assert lag1 > 0.6
    again = C.record_episode(env, _ConstExpert, 0, 7, 3, 100, action_noise=0.3,
                             rng=C.noise_rng(7, 0, 0))
    assert np.allclose(np.stack(env.executed), executed)  # same attempt, same noise
    with pytest.raises(ValueError, match="rng"):
        C.record_episode(env, _ConstExpert, 0, 7, 3, 100, action_noise=0.3)
    assert again["success"]


def test_noisy_collection_refuses_a_root_of_clean_attempts(tmp_path):
    import scripts.collect_demos as C

    D.append_attempt(tmp_path, "libero_10", {"task_id": 0, "init_state_idx": 10, "seed": 7,
                                             "success": True, "steps": 5, "wall_s": 0.1})
    with pytest.raises(SystemExit, match="action_noise"):
        C.main(["suite=libero_10", "inits=10", "tasks=0", f"root={tmp_path}",
                "action_noise=0.3"])
