"""scripts.frames_sheet: draws the chosen queries' saved frames; names what is missing."""

import numpy as np
import pytest

from scripts.frames_sheet import main


def write_frames(run, n=6):
    ep = run / "frames" / "t00_i000_s7"
    ep.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for q in range(n):
        np.savez(ep / f"q{q:03d}.npz", grid=np.array([4]),
                 agentview=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                 robot0_eye_in_hand=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                 kept_agentview=np.array([1]), kept_robot0_eye_in_hand=np.array([2]))


def test_sheet_of_chosen_queries(tmp_path):
    write_frames(tmp_path / "run")
    out = main([f"run={tmp_path / 'run'}", "queries=[1,4]", f"out={tmp_path / 'a.png'}"])
    assert out.exists() and out.stat().st_size > 1000
    shaded = main([f"run={tmp_path / 'run'}", f"out={tmp_path / 'b.png'}", "kept=true"])
    assert shaded.read_bytes() != out.read_bytes()


def test_missing_query_and_missing_frames_are_named(tmp_path):
    write_frames(tmp_path / "run", n=3)
    with pytest.raises(SystemExit, match=r"q007\.npz"):
        main([f"run={tmp_path / 'run'}", "queries=[1,7]", f"out={tmp_path / 'a.png'}"])
    with pytest.raises(SystemExit, match="save_frames=1"):
        main([f"run={tmp_path / 'empty'}", f"out={tmp_path / 'b.png'}"])
