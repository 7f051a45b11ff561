import numpy as np
import pytest
import torch

SMALL = dict(image_size=64, patch_size=16, vit_dim=32, vit_layers=1, vit_heads=2, hidden=64,
             layers=4, heads=4, mlp=128)


@pytest.fixture
def small_model():
    """A random-weight tiny_vla with the default layout shape but small sizes (fast)."""
    m = random_tiny_vla(SMALL)
    m.reset("put the black bowl on the plate")
    return m


def random_tiny_vla(arch):
    """TinyVLAAdapter with random weights even when trained weights exist."""
    import warnings

    from bench.models import tiny_vla

    saved = tiny_vla.DEFAULT_WEIGHTS
    tiny_vla.DEFAULT_WEIGHTS = tiny_vla.Path("/nonexistent/tiny_vla.safetensors")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tiny_vla.TinyVLAAdapter(weights="auto", seed=0, **arch)
    finally:
        tiny_vla.DEFAULT_WEIGHTS = saved


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return {v: rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            for v in ("agentview", "robot0_eye_in_hand")}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
