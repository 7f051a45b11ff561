import numpy as np
import pytest

from bench.errors import UserError
from bench.suites.libero import LiberoSuite, quat2axisangle


def test_quat2axisangle_identity_and_sign_flip():
    assert np.allclose(quat2axisangle(np.array([0, 0, 0, 1.0])), 0)
    # 90 degrees about z, and the same rotation with a negated quaternion (w < 0)
    q = np.array([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    assert np.allclose(quat2axisangle(q), [0, 0, np.pi / 2])
    assert np.allclose(quat2axisangle(-q), [0, 0, np.pi / 2])


def test_unknown_suite_is_a_user_error():
    with pytest.raises(UserError, match="known"):
        LiberoSuite(name="libero_nope", max_steps=10)


@pytest.mark.sim
def test_unknown_task_id_names_the_range():
    suite = LiberoSuite(name="libero_spatial", max_steps=220, tasks=[0, 12])
    with pytest.raises(UserError, match="0..9"):
        suite.task_ids()
