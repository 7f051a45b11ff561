"""The scripted expert solves an easy LIBERO task physics-only within the protocol budget."""

import numpy as np
import pytest

from bench.expert.geometry import R_DOWN, mat2axisangle, rotz, wrap_half, yaw_for_finger_axis


def test_rotation_helpers():
    for yaw in (-1.2, 0.0, 0.4, 1.5):
        v = mat2axisangle(rotz(yaw))
        np.testing.assert_allclose(v, [0, 0, yaw], atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(mat2axisangle(rotz(np.pi))), np.pi, atol=1e-6)
    assert -np.pi / 2 <= wrap_half(3.0) < np.pi / 2
    # fingers separate along the grip site's x axis = rotz(yaw) @ R_DOWN[:, 0]
    for ang in (0.3, 2.0, -2.5):
        u = np.array([np.cos(ang), np.sin(ang), 0.0])
        axis = (rotz(yaw_for_finger_axis(u)) @ R_DOWN)[:, 0]
        assert abs(abs(axis @ u) - 1) < 1e-9


@pytest.mark.sim
def test_expert_solves_spatial_task0():
    from bench.expert import run_episode
    from bench.suites.libero import LiberoEnv

    env = LiberoEnv("libero_spatial", 0, camera_size=64, max_steps=220, render=False)
    try:
        ok, actions = run_episode(env, 0, seed=7)
        assert ok, "expert failed libero_spatial task 0 init 0"
        assert len(actions) <= 220
        a = np.array(actions)
        assert a.shape[1] == 7 and np.all(np.abs(a) <= 1)
        assert set(np.unique(a[:, 6])) <= {-1.0, 1.0}
        # smooth: the arm part changes by a bounded amount per step
        assert np.abs(np.diff(a[:, :6], axis=0)).max() <= 0.26
    finally:
        env.close()


def test_pointing_helpers():
    from bench.expert.skills import axis_rot, pointing_rot

    lat = np.array([-1.0, 0.0, 0.0])
    r = axis_rot(lat, np.deg2rad(45))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    # tilting about lat = (-pull_y, pull_x) tips a downward direction towards -pull
    pull = np.array([0.0, 1.0, 0.0])
    d = r @ np.array([0.0, 0.0, -1.0])
    assert d @ -pull > 0.7 and d[2] < -0.7
    rot = pointing_rot(-pull, lat)
    np.testing.assert_allclose(rot[:, 2], -pull, atol=1e-12)  # approach axis
    assert abs(abs(rot[:, 0] @ lat) - 1) < 1e-12  # fingers separate along lat
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
