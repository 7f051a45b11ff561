"""`tiny_vla`: the embedded default model, OpenVLA-OFT in shape at a CPU-trainable size.

Two camera views (third-person + wrist) -> a small ViT patch encoder shared across views (with a
view embedding) -> an MLP projector -> a Llama decoder (transformers, causal) over
BOS | view-0 patches | view-1 patches | proprio | instruction words | action queries
-> an L1-regression MLP head on the action-query states -> a chunk of 8 normalised actions.
Weights, architecture, vocabulary and normalisation statistics live in one safetensors file.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaModel

from bench.data.demos import normalize_proprio, unnormalize_actions
from bench.errors import UserError
from bench.models.base import VLAAdapter
from bench.models.tokenizer import WordTokenizer
from pruning.base import ModelSpec
from pruning.forward import DecoderSpec
from pruning.layout import ACTION, OTHER, TEXT, VISUAL, TokenLayout

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "tiny_vla.safetensors"


def weights_for(suite: str | None) -> Path:
    """The repo's weights file for a suite's model (one model per suite), or the shared one."""
    return WEIGHTS_DIR / f"tiny_vla_{suite}.safetensors" if suite else DEFAULT_WEIGHTS


@dataclass
class TinyVLAConfig:
    image_size: int = 160
    patch_size: int = 16
    views: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")
    vit_dim: int = 192
    vit_layers: int = 3
    vit_heads: int = 3
    hidden: int = 256
    layers: int = 8
    heads: int = 4
    mlp: int = 1024
    proprio_dim: int = 8
    action_dim: int = 7
    chunk_len: int = 8
    max_words: int = 24
    vocab: list[str] = field(default_factory=list)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        return self.grid * self.grid


def identity_stats(cfg: TinyVLAConfig) -> dict:
    """Normalisation statistics that leave actions/proprio in [-1, 1] unchanged."""
    return {
        "actions": {"q01": [-1.0] * cfg.action_dim, "q99": [1.0] * cfg.action_dim},
        "proprio": {"q01": [-1.0] * cfg.proprio_dim, "q99": [1.0] * cfg.proprio_dim},
    }


class PatchViT(nn.Module):
    """(B, V, 3, S, S) images in [-1, 1] -> (B, V, N, vit_dim) patch features."""

    def __init__(self, cfg: TinyVLAConfig):
        super().__init__()
        self.embed = nn.Conv2d(3, cfg.vit_dim, cfg.patch_size, cfg.patch_size)
        self.pos = nn.Parameter(torch.randn(1, cfg.n_patches, cfg.vit_dim) * 0.02)
        self.view = nn.Parameter(torch.randn(len(cfg.views), 1, cfg.vit_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.vit_dim, cfg.vit_heads, 4 * cfg.vit_dim,
                                           dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.vit_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.vit_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, v = images.shape[:2]
        x = self.embed(images.flatten(0, 1)).flatten(2).transpose(1, 2)  # (B*V, N, d)
        x = x + self.pos
        x = x.view(b, v, *x.shape[1:]) + self.view
        x = self.blocks(x.flatten(0, 1))
        return self.norm(x).view(b, v, *x.shape[1:])


class TinyVLA(nn.Module):
    def __init__(self, cfg: TinyVLAConfig):
        super().__init__()
        self.cfg = cfg
        self.vit = PatchViT(cfg)
        self.projector = nn.Sequential(nn.Linear(cfg.vit_dim, cfg.hidden), nn.GELU(),
                                       nn.Linear(cfg.hidden, cfg.hidden))
        self.proprio_proj = nn.Sequential(nn.Linear(cfg.proprio_dim, cfg.hidden), nn.GELU(),
                                          nn.Linear(cfg.hidden, cfg.hidden))
        self.action_queries = nn.Parameter(torch.randn(cfg.chunk_len, cfg.hidden) * 0.02)
        lcfg = LlamaConfig(vocab_size=len(cfg.vocab) + 3, hidden_size=cfg.hidden,
                           intermediate_size=cfg.mlp, num_hidden_layers=cfg.layers,
                           num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                           max_position_embeddings=512, tie_word_embeddings=False)
        self.llm = LlamaModel._from_config(lcfg, attn_implementation="sdpa")
        self.head = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
                                  nn.Linear(cfg.hidden, cfg.action_dim))

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """(B, V, S, S, 3) uint8 -> (B, V, 3, S, S) float in [-1, 1]."""
        return images.permute(0, 1, 4, 2, 3).float().div(127.5).sub(1.0)

    def visual_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, V, 3, S, S) in [-1, 1] -> (B, V*N, hidden) projected visual tokens."""
        return self.projector(self.vit(pixels)).flatten(1, 2)

    def build_inputs(self, pixels, proprio, word_ids, word_mask):
        """Batched decoder inputs for training.

        pixels (B, V, 3, S, S); proprio (B, P) normalised; word_ids (B, W) padded at the end;
        word_mask (B, W) bool. Returns embeds (B, T, D), attention mask (B, T), position ids
        (B, T) counting only real tokens, so padded training equals unpadded inference.
        """
        b = pixels.shape[0]
        emb = self.llm.embed_tokens
        bos = emb(torch.full((b, 1), 1, dtype=torch.long))
        vis = self.visual_tokens(pixels)
        prop = self.proprio_proj(proprio).unsqueeze(1)
        words = emb(word_ids)
        act = self.action_queries.expand(b, -1, -1)
        embeds = torch.cat([bos, vis, prop, words, act], dim=1)
        ones = lambda n: torch.ones(b, n, dtype=torch.bool)  # noqa: E731
        mask = torch.cat([ones(1 + vis.shape[1] + 1), word_mask, ones(act.shape[1])], dim=1)
        pos = mask.long().cumsum(1) - 1
        return embeds, mask, pos

    def forward(self, pixels, proprio, word_ids, word_mask) -> torch.Tensor:
        """Training forward: (B, chunk_len, action_dim) normalised actions."""
        embeds, mask, pos = self.build_inputs(pixels, proprio, word_ids, word_mask)
        out = self.llm(inputs_embeds=embeds, attention_mask=mask.long(), position_ids=pos)
        return self.head(out.last_hidden_state[:, -self.cfg.chunk_len:])


def save_weights(model: TinyVLA, stats: dict, path: str | Path, extra: dict | None = None):
    from safetensors.torch import save_file

    meta = {"config": json.dumps(asdict(model.cfg)), "stats": json.dumps(stats),
            "extra": json.dumps(extra or {})}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def load_weights(path: str | Path) -> tuple[TinyVLA, dict, dict]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    raw = json.loads(meta["config"])
    raw["views"] = tuple(raw["views"])
    cfg = TinyVLAConfig(**raw)
    model = TinyVLA(cfg)
    model.load_state_dict(load_file(str(path)))
    return model, json.loads(meta["stats"]), json.loads(meta.get("extra", "{}"))


class TinyVLAAdapter(VLAAdapter):
    """Adapter for the harness. `weights`: "auto" (the repo's weights for `suite`, else the
    shared file, else random weights with a warning), or a path that must exist."""

    name = "tiny_vla"

    def __init__(self, weights: str = "auto", seed: int = 0, threads: int = 0,
                 suite: str | None = None, **arch):
        if threads:
            torch.set_num_threads(threads)
        if weights in ("auto", None, ""):
            path = weights_for(suite) if suite and weights_for(suite).exists() else DEFAULT_WEIGHTS
        else:
            path = Path(weights)
        self.trained = path.exists()
        if weights not in ("auto", None, "") and not path.exists():
            raise UserError(f"tiny_vla weights file not found: {path} (train it with "
                            "`python -m scripts.train_tiny_vla` or pass model.weights=auto)")
        if self.trained:
            self.model, self.stats, self.extra = load_weights(path)
            self.weights_path = str(path)
        else:
            warnings.warn(f"tiny_vla: no trained weights at {path}; running with RANDOM weights "
                          "(success rates will be ~0)", stacklevel=2)
            torch.manual_seed(seed)
            cfg = TinyVLAConfig(vocab=WordTokenizer.load().vocab[3:], **arch)
            self.model, self.extra = TinyVLA(cfg), {}
            self.stats = identity_stats(cfg)
            self.weights_path = None
        self.model.eval()
        self.weights_sha = None
        if self.weights_path:
            import hashlib

            self.weights_sha = hashlib.sha256(Path(self.weights_path).read_bytes()).hexdigest()[:16]
        self.model_id = f"tiny_vla-{self.weights_sha or f'random-seed{seed}'}"
        self.cfg = self.model.cfg
        self.tokenizer = WordTokenizer(self.cfg.vocab)
        self.view_names = tuple(self.cfg.views)
        self.patch_size = self.cfg.patch_size
        self.chunk_len = self.cfg.chunk_len
        self.action_dim = self.cfg.action_dim
        self._word_ids = torch.zeros(0, dtype=torch.long)

    def describe(self) -> dict:
        n_params = sum(p.numel() for p in self.model.parameters())
        sha = self.weights_sha
        return {"name": self.name, "trained": self.trained, "weights": self.weights_path,
                "weights_sha256": sha,
                "params": n_params, "config": {k: v for k, v in asdict(self.cfg).items()
                                               if k != "vocab"}, "train": self.extra}

    def reset(self, instruction: str) -> None:
        ids = self.tokenizer.encode(instruction)[: self.cfg.max_words]
        self._word_ids = torch.tensor(ids, dtype=torch.long)

    def _images(self, images: dict[str, np.ndarray]) -> torch.Tensor:
        """(1, V, S, S, 3) uint8 at the model's input size."""
        missing = [v for v in self.view_names if v not in images]
        if missing:
            raise ValueError(f"observation lacks camera views {missing}")
        x = torch.stack([torch.from_numpy(np.ascontiguousarray(images[v]))
                         for v in self.view_names]).unsqueeze(0)
        s = self.cfg.image_size
        if x.shape[2] != s or x.shape[3] != s:
            x = F.interpolate(x[0].permute(0, 3, 1, 2).float(), size=(s, s), mode="bilinear",
                              antialias=True, align_corners=False)
            x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).unsqueeze(0)
        return x

    def patches(self, images):
        s = self.cfg.image_size
        views = [images.get(v) for v in self.view_names]
        if all(x is not None and x.shape == (s, s, 3) and x.dtype == np.uint8 for x in views):
            x = np.stack(views)  # (V, S, S, 3) uint8: already the model's size, no torch
        else:
            x = self._images(images)[0].numpy()
        p, g, n_v = self.patch_size, self.cfg.grid, len(self.view_names)
        x = x.reshape(n_v, g, p, g, p * 3).transpose(0, 1, 3, 2, 4).reshape(n_v, g * g, -1)
        return {v: x[i] for i, v in enumerate(self.view_names)}

    def layout(self) -> TokenLayout:
        n = self.cfg.n_patches
        parts = [("bos", OTHER, 1)] + [(v, VISUAL, n) for v in self.view_names]
        parts += [("proprio", OTHER, 1), ("instruction", TEXT, len(self._word_ids)),
                  ("action", ACTION, self.chunk_len)]
        return TokenLayout.build(parts, patch_grid=(self.cfg.grid, self.cfg.grid))

    @torch.inference_mode()
    def encode(self, images, proprio):
        m = self.model
        pixels = m.preprocess(self._images(images))
        prop = normalize_proprio(np.asarray(proprio, np.float32), self.stats)
        ids = self._word_ids.unsqueeze(0)
        embeds, _, _ = m.build_inputs(pixels, torch.from_numpy(prop).unsqueeze(0), ids,
                                      torch.ones_like(ids, dtype=torch.bool))
        return embeds, self.layout()

    def decoder(self) -> DecoderSpec:
        llm = self.model.llm
        c = llm.config
        return DecoderSpec(list(llm.layers), llm.rotary_emb, llm.norm, c.num_attention_heads,
                           c.num_key_value_heads, c.hidden_size // c.num_attention_heads,
                           causal=True)

    def model_spec(self, layout):
        c = self.model.llm.config
        return ModelSpec(c.num_hidden_layers, c.num_attention_heads, c.hidden_size, True,
                         layout, self.patch_size, model_id=self.model_id)

    @torch.inference_mode()
    def head(self, action_hidden):
        return self.model.head(action_hidden)[0]

    def to_env_actions(self, actions):
        # dims 0-5 back to env units; the gripper binarised to -1/+1 as OFT does
        return unnormalize_actions(actions.detach().float().numpy(), self.stats)

    @torch.inference_mode()
    def reference_forward(self, input_embeds):
        n = input_embeds.shape[1]
        out = self.model.llm(inputs_embeds=input_embeds, position_ids=torch.arange(n)[None])
        return out.last_hidden_state[:, -self.chunk_len:]
