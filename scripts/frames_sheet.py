"""Draw saved camera frames of one episode side by side (both views, chosen policy queries).

    python -m bench.run suite=libero_10 method=none tasks=[0] trials=1 save_frames=1 \
        run_dir=results/tmp/l10_task0_frames
    python -m scripts.frames_sheet run=results/tmp/l10_task0_frames queries=[18,22,26,28,30,34] \
        out=results/figures/libero_10_task0_none_frames_tiny_vla.png

The frames are what `save_frames` stored (`frames/{episode}/q{idx}.npz`, the images the policy
saw at each query). `episode` defaults to the run's first episode with frames. `kept=true`
darkens the patches whose tokens the method did not keep at the last layer (as the report's
kept-token figure does).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

DEFAULTS = {"run": None, "episode": None, "queries": None, "out": None, "every": 4, "max": 12,
            "kept": False}  # kept=true: shade the patches the method pruned (report's overlay)


def main(argv: list[str]) -> Path:
    cfg = OmegaConf.merge(OmegaConf.create(DEFAULTS), OmegaConf.from_dotlist(argv))
    if not cfg.run or not cfg.out:
        sys.exit("frames_sheet: give run=<run folder with frames/> and out=<png>")
    frames = Path(cfg.run) / "frames"
    episodes = sorted(p for p in frames.iterdir() if p.is_dir()) if frames.is_dir() else []
    if not episodes:
        sys.exit(f"frames_sheet: no saved frames under {frames} (run bench.run with "
                 "save_frames=1)")
    ep = frames / cfg.episode if cfg.episode else episodes[0]
    files = sorted(ep.glob("q*.npz"))
    if cfg.queries is not None:
        files = [ep / f"q{int(q):03d}.npz" for q in cfg.queries]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            sys.exit(f"frames_sheet: {ep} has no {missing}")
    else:
        files = files[::int(cfg.every)][:int(cfg.max)]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report.figures import overlay

    first = np.load(files[0])
    views = [k for k in first.files if not k.startswith("kept_") and k != "grid"]
    fig, axes = plt.subplots(len(views), len(files), figsize=(2.4 * len(files), 2.4 * len(views)),
                             squeeze=False)
    for j, f in enumerate(files):
        d = np.load(f)
        for i, v in enumerate(views):
            if cfg.kept and f"kept_{v}" in d.files:
                overlay(axes[i][j], d[v], d[f"kept_{v}"], int(np.asarray(d["grid"]).ravel()[0]))
            else:
                axes[i][j].imshow(d[v])
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
            if i == 0:
                axes[i][j].set_title(f"query {int(f.stem[1:])}", fontsize=9)
            if j == 0:
                axes[i][j].set_ylabel(v, fontsize=8)
    fig.suptitle(f"{Path(cfg.run).name}: {ep.name}", fontsize=9)
    fig.tight_layout()
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=55)
    plt.close(fig)
    print(out)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
