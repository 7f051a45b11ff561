"""Train the embedded `tiny_vla` by behaviour cloning (L1 on the 8-step action chunk).

    python -m scripts.train_tiny_vla suites=[libero_spatial]      # resumes if interrupted

One model per suite, as OpenVLA-OFT has one checkpoint per LIBERO suite: a suite's model can
start training as soon as that suite's demonstrations exist (demos are collected suite by suite
on this CPU), and each is small enough to train in a few CPU hours. `suites=[a,b,...]` trains
one model on several suites (written to tiny_vla.safetensors). Checkpoints (model, optimiser, schedule,
RNG, step) go to `data/train/{run}/ckpt.pt` every `ckpt_every` steps and at exit, so a killed
run resumes where it stopped. The trained weights (safetensors, with architecture, vocabulary
and normalisation statistics in its metadata) are exported to `out` at every validation.
Augmentation as OpenVLA-OFT uses it: random crop (pad-and-crop shift) and colour jitter.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from tqdm import tqdm

from bench.data.demos import (
    compute_stats,
    iter_demo_files,
    load_demo,
    normalize_actions,
    normalize_proprio,
)
from bench.models.tiny_vla import TinyVLA, TinyVLAConfig, load_weights, save_weights, weights_for
from bench.models.tokenizer import WordTokenizer

DEFAULTS = {
    "suites": ["libero_spatial", "libero_object", "libero_goal", "libero_10"],
    "demos": "data/demos",  # a root, or a list of roots (e.g. clean + noise-injected demos)
    "run": None,  # default: the suite name (or "all")
    "out": None,  # default: bench/models/weights/tiny_vla_{suite}.safetensors
    "log": None,  # default: results/training/{run}.jsonl
    "steps": 20000,
    "batch": 32,
    "lr": 3e-4,
    "min_lr": 3e-5,
    "warmup": 500,
    "weight_decay": 0.01,
    "grad_clip": 1.0,
    "bf16": True,
    "threads": 0,
    "seed": 0,
    "val_every": 1000,
    "val_batches": 20,
    "ckpt_every": 200,
    "val_init_mod": 10,  # demos with init_state_idx % val_init_mod == val_init_mod - 1 held out
    "crop_pad": 8,
    "jitter": 0.2,
    "max_demos": 0,  # 0 = all (for quick tests)
    "arch": {},  # TinyVLAConfig overrides (tests use a small model)
    "ckpt_root": "data/train",  # checkpoints: {ckpt_root}/{run}/ckpt.pt
    "init": None,  # warm start: a weights file (e.g. the committed model) to start from
    "max_minutes": 0,  # wall-clock budget; the LR schedule anneals to min_lr by then (0: none)
}


class DemoSet:
    """All frames of a set of demos in memory.

    images: (F, 2, S, S, 3) uint8; proprio (F, 8) normalised; chunks (F, 8, 7) normalised;
    words (F, W) padded ids + mask.
    """

    def __init__(self, files: list[Path], stats: dict, tok: WordTokenizer, chunk: int,
                 max_words: int, desc: str = "load"):
        imgs, props, chunks, words = [], [], [], []
        self.instructions = set()
        for p in tqdm(files, desc=desc, unit="demo", leave=False):
            d = load_demo(p)
            acts = normalize_actions(d["actions"], stats)
            prop = normalize_proprio(d["proprio"], stats)
            n = len(acts)
            ids = tok.encode(d["instruction"])[:max_words]
            self.instructions.add(d["instruction"])
            for t in d["image_steps"]:
                idx = np.minimum(np.arange(t, t + chunk), n - 1)  # past the end: last action
                chunks.append(acts[idx])
                props.append(prop[t])
                words.append(ids)
            imgs.append(np.stack([d["agentview"], d["wrist"]], axis=1))
        self.images = torch.from_numpy(np.concatenate(imgs)) if imgs else torch.zeros(0)
        self.proprio = torch.from_numpy(np.stack(props)) if props else torch.zeros(0)
        self.chunks = torch.from_numpy(np.stack(chunks)) if chunks else torch.zeros(0)
        w = torch.zeros(len(words), max_words, dtype=torch.long)
        m = torch.zeros(len(words), max_words, dtype=torch.bool)
        for i, ids in enumerate(words):
            w[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            m[i, :len(ids)] = True
        self.words, self.word_mask = w, m

    def __len__(self) -> int:
        return len(self.chunks)

    def batch(self, idx: torch.Tensor):
        return (self.images[idx], self.proprio[idx], self.words[idx], self.word_mask[idx],
                self.chunks[idx])


def augment(images: torch.Tensor, pad: int, jitter: float, gen: torch.Generator) -> torch.Tensor:
    """(B, V, 3, S, S) in [-1, 1] -> random shift crop (pad and crop) + colour jitter."""
    b, v, c, s, _ = images.shape
    x = images.flatten(0, 1)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        ox = torch.randint(0, 2 * pad + 1, (x.shape[0],), generator=gen)
        oy = torch.randint(0, 2 * pad + 1, (x.shape[0],), generator=gen)
        rows = (oy[:, None] + torch.arange(s)[None]).clamp(max=s + 2 * pad - 1)
        cols = (ox[:, None] + torch.arange(s)[None]).clamp(max=s + 2 * pad - 1)
        x = x[torch.arange(x.shape[0])[:, None, None, None], torch.arange(c)[None, :, None, None],
              rows[:, None, :, None], cols[:, None, None, :]]
    if jitter:
        n = x.shape[0]
        u = lambda: (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * jitter  # noqa: E731
        x = x + u()  # brightness
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (1 + u()) + mean  # contrast
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray) * (1 + u()) + gray  # saturation
        x = x.clamp(-1, 1)
    return x.view(b, v, c, s, s)


def lr_at(step: int, cfg, minutes: float = 0.0) -> float:
    """Linear warm-up, then cosine to `min_lr` at `steps` or at `max_minutes` of training,
    whichever comes first (a session-sized budget still ends on an annealed model)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    if cfg.max_minutes:
        p = max(p, min(1.0, minutes / float(cfg.max_minutes)))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * p))


def loss_on(model: TinyVLA, batch, cfg, gen: torch.Generator | None, train: bool):
    images, proprio, words, mask, target = batch
    pixels = TinyVLA.preprocess(images)
    if train:
        pixels = augment(pixels, cfg.crop_pad, cfg.jitter, gen)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cfg.bf16)):
        pred = model(pixels, proprio, words, mask)
    return F.l1_loss(pred.float(), target)


def warm_start(mcfg: TinyVLAConfig, path: Path, stats: dict, suites: list[str]):
    """Start from a trained weights file (a session's training continues the committed model:
    demonstrations and checkpoints do not outlive a session, the weights do). The file's
    normalisation statistics are kept when it was trained on the same suites (its outputs are
    in their units); otherwise the new data's statistics are used."""
    if not path.exists():
        sys.exit(f"error: init weights not found: {path}")
    init_model, init_stats, init_extra = load_weights(path)
    if asdict(init_model.cfg) != asdict(mcfg):
        sys.exit(f"error: {path} has a different architecture or vocabulary than this run")
    same = list(init_extra.get("suites", [])) == list(suites)
    note = {"path": str(path), "step": init_extra.get("step"), "suites": init_extra.get("suites"),
            "val_l1": init_extra.get("val_l1"), "stats": "kept" if same else "recomputed",
            "total_steps": init_extra.get("total_steps", init_extra.get("step", 0)),
            "previous": init_extra.get("init")}
    print(f"warm start from {path} (step {note['step']}, suites {note['suites']}); "
          f"normalisation statistics {note['stats']}")
    return init_model, (init_stats if same else stats), note


def split_files(files: list[Path], cfg) -> tuple[list[Path], list[Path]]:
    def init_of(p: Path) -> int:
        return int(p.stem.split("_")[1][1:])

    val = [p for p in files if init_of(p) % cfg.val_init_mod == cfg.val_init_mod - 1]
    train = [p for p in files if p not in set(val)]
    return train, val


def main(argv: list[str]) -> None:
    cfg = OmegaConf.merge(OmegaConf.create(DEFAULTS), OmegaConf.from_dotlist(argv))
    suites = list(cfg.suites)
    cfg.run = cfg.run or (suites[0] if len(suites) == 1 else "all")
    cfg.out = cfg.out or str(weights_for(suites[0] if len(suites) == 1 else None))
    cfg.log = cfg.log or f"results/training/tiny_vla_{cfg.run}.jsonl"
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    roots = list(cfg.demos) if OmegaConf.is_list(cfg.demos) else [cfg.demos]
    files = [f for root in roots for f in iter_demo_files(root, list(cfg.suites))]
    if cfg.max_demos:
        files = files[: cfg.max_demos]
    if not files:
        sys.exit(f"error: no demos under {cfg.demos} for {list(cfg.suites)}; collect them with "
                 "`python -m scripts.collect_demos suite=...`")
    train_files, val_files = split_files(files, cfg)
    stats = compute_stats(files)
    tok = WordTokenizer.load()
    mcfg = TinyVLAConfig(vocab=tok.vocab[3:], **cfg.arch)
    torch.manual_seed(cfg.seed)
    model = TinyVLA(mcfg)  # built on a warm start too: the same RNG stream either way
    init_note = None
    if cfg.init:
        model, stats, init_note = warm_start(mcfg, Path(cfg.init), stats, suites)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt_dir = Path(cfg.ckpt_root) / cfg.run
    ckpt_path = ckpt_dir / "ckpt.pt"
    step, best_val, minutes_done = 0, float("inf"), 0.0
    gen = torch.Generator().manual_seed(cfg.seed)
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, best_val = ck["step"], ck.get("best_val", float("inf"))
        minutes_done = ck.get("minutes", 0.0)
        init_note = ck.get("init_note", init_note)
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        stats = ck["stats"]  # keep the statistics the run started with
        print(f"resumed {ckpt_path} at step {step}")
    train = DemoSet(train_files, stats, tok, mcfg.chunk_len, mcfg.max_words, "load train")
    val = DemoSet(val_files, stats, tok, mcfg.chunk_len, mcfg.max_words, "load val")
    print(f"demos: {len(train_files)} train / {len(val_files)} val; samples: {len(train)} train "
          f"/ {len(val)} val; params {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    Path(cfg.log).parent.mkdir(parents=True, exist_ok=True)

    def save_ckpt() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "best_val": best_val, "gen": gen.get_state(), "minutes": minutes(),
                    "init_note": init_note,
                    "torch_rng": torch.get_rng_state(), "stats": stats,
                    "cfg": OmegaConf.to_container(cfg)}, tmp)
        tmp.replace(ckpt_path)

    stop = {"now": False}
    t_start = time.perf_counter()

    def minutes() -> float:
        return minutes_done + (time.perf_counter() - t_start) / 60.0

    def on_signal(signum, frame):  # finish the step, checkpoint, exit
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def validate() -> float:
        model.eval()
        vgen = torch.Generator().manual_seed(1234)
        losses = []
        with torch.no_grad():
            for _ in range(cfg.val_batches):
                idx = torch.randint(0, len(val), (cfg.batch,), generator=vgen)
                losses.append(loss_on(model, val.batch(idx), cfg, None, False).item())
        model.train()
        return float(np.mean(losses))

    model.train()
    bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True)
    window, t_last = [], time.perf_counter()

    def log_validation() -> dict:
        nonlocal window, t_last
        v = validate() if len(val) else float("nan")
        now = time.perf_counter()
        rec = {"step": step, "total_steps": total_steps(),
               "train_l1": float(np.mean(window)) if window else float("nan"), "val_l1": v, "lr": lr_at(step, cfg, minutes()),
               "s_per_step": (now - t_last) / max(1, len(window)),
               "minutes": round(minutes(), 2), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        window, t_last = [], now
        with open(cfg.log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        tqdm.write(json.dumps(rec))
        return rec

    def export(rec: dict) -> None:
        save_weights(model, stats, cfg.out, extra={
            "step": step, "total_steps": total_steps(), "train_l1": rec["train_l1"],
            "val_l1": rec["val_l1"],
            "suites": list(cfg.suites), "train_demos": len(train_files),
            "val_demos": len(val_files), "samples": len(train), "train_minutes": minutes(),
            "init": init_note,
            "arch": {k: v for k, v in asdict(mcfg).items() if k != "vocab"}})

    def total_steps() -> int:
        """Optimiser steps behind the weights, counting the warm-start chain."""
        return step + int((init_note or {}).get("total_steps") or 0)

    def out_of_time() -> bool:
        return bool(cfg.max_minutes) and minutes() >= float(cfg.max_minutes)

    last_export = step
    if step == 0 and cfg.init and len(val):
        # the warm-start weights on this run's held-out demos, before any step (a baseline for
        # the curve; with new demos, also how well the old model fits states it never saw)
        log_validation()
        t_start = time.perf_counter()  # the time budget is for training steps
    while step < cfg.steps and not stop["now"] and not out_of_time():
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg, minutes())
        idx = torch.randint(0, len(train), (cfg.batch,), generator=gen)
        loss = loss_on(model, train.batch(idx), cfg, gen, True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        window.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(window[-50:]):.4f}")
        if step % cfg.ckpt_every == 0:
            save_ckpt()
        if step % cfg.val_every == 0 or step == cfg.steps or out_of_time():
            rec = log_validation()
            best_val = min(best_val, rec["val_l1"])
            export(rec)
            last_export = step
            save_ckpt()
    if step > last_export:  # stopped between validations (signal): export what was trained
        export(log_validation())
    save_ckpt()
    bar.close()
    print(f"stopped at step {step}; checkpoint {ckpt_path}; weights {cfg.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
