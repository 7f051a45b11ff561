"""`openvla_oft`: a local OpenVLA-OFT checkpoint (Prismatic 7B, LIBERO fine-tunes) on a GPU.

What this relies on in the checkpoint folder (the layout of moojink/openvla-7b-oft-finetuned-*):
- `config.json` (Prismatic/OpenVLA config, model_type "openvla", with `auto_map` to its own
  remote code, which is NOT executed here): `use_fused_vision_backbone`, `timm_model_ids`
  (DINOv2 ViT-L/14 reg4, SigLIP So400m/14), `image_sizes`, `timm_override_act_layers`,
  `text_config` (Llama-2 7B; fields it omits take `LlamaConfig` defaults, as the remote code does).
- the model weights, `model.safetensors` or `model.safetensors.index.json` + shards, with keys
  `vision_backbone.featurizer.*` (DINOv2), `vision_backbone.fused_featurizer.*` (SigLIP; timm
  names, LayerScale `gamma` renamed `scale_factor`), `projector.fc1/fc2/fc3.*` (fused MLP
  2176 -> 8704 -> 4096 -> 4096, GELU), `language_model.model.*` (LlamaModel; `lm_head` unused).
- `action_head--*checkpoint.pt`: L1-regression MLPResNet (`model.layer_norm1`, `model.fc1`
  (D*7 -> D), 2 pre-LN residual blocks `model.mlp_resnet_blocks.i.ffn.{0,1}`, `model.layer_norm2`,
  `model.fc2` (D -> 7)), on the hidden states of the 56 action positions regrouped as
  (8, 7*D); keys may carry DDP's `module.` prefix.
- `proprio_projector--*checkpoint.pt`: `fc1` (8 -> D), GELU, `fc2` (D -> D).
- `dataset_statistics.json`: {unnorm_key: {"action": {q01, q99, mask}, "proprio": {q01, q99}}}
  (BOUNDS_Q99: [q01, q99] -> [-1, 1] where mask is true; the gripper is left as predicted).
- the Llama tokenizer files, `preprocessor_config.json` (per-backbone means/stds; optional).

The sequence (OFT's `predict_action`, batch 1):
  BOS | view-0 patches (256) | view-1 patches (256) | proprio | prompt after BOS (ends with the
  empty token "▁", id 29871 in Llama's vocabulary) | 56 action placeholders (zero embeddings) | stop
decoded in one forward with bidirectional attention (OFT trains it non-causal; its transformers
fork turns attention causal again when eager attention is requested, so the harness never
relies on that: the shared loop runs `causal=False`).
The head reads the final-normed states at positions [first placeholder - 1, +56): OFT's
training aligns each action with the state one position before its placeholder. The layout's
`action` segment is exactly those 56 positions (the last prompt token + placeholders 0..54);
placeholder 55 (`action_last`) and the stop token are `other`.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.errors import UserError
from bench.models.base import VLAAdapter
from pruning.base import ModelSpec
from pruning.forward import DecoderSpec
from pruning.layout import ACTION, OTHER, TEXT, VISUAL, TokenLayout

PROMPT = "In: What action should the robot take to {task}?\nOut:"
# Channel statistics of the two backbones (DINOv2: ImageNet; SigLIP: 0.5), used when the
# folder has no preprocessor_config.json.
DEFAULT_MEANS = [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]]
DEFAULT_STDS = [[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]]


# --------------------------------------------------------------------------- modules
class FusedVisionBackbone(nn.Module):
    """Prismatic's fused featurizer: per image, DINOv2 on channels 0:3 and SigLIP on 3:6, the
    second-to-last block's patch tokens (no final norm, no prefix tokens), concatenated on the
    feature dimension. (B, 6*n_images, S, S) -> (B, n_images * N, d_dino + d_siglip)."""

    def __init__(self, featurizer: nn.Module, fused_featurizer: nn.Module, n_images: int):
        super().__init__()
        self.featurizer = featurizer
        self.fused_featurizer = fused_featurizer
        self.n_images = n_images
        self.embed_dim = featurizer.embed_dim + fused_featurizer.embed_dim

    @staticmethod
    def _penultimate(vit: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return vit.get_intermediate_layers(x, n=[len(vit.blocks) - 2])[0]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = []
        for img in torch.split(pixel_values, [6] * self.n_images, dim=1):
            a, b = torch.split(img, [3, 3], dim=1)
            out.append(torch.cat([self._penultimate(self.featurizer, a),
                                  self._penultimate(self.fused_featurizer, b)], dim=2))
        return torch.cat(out, dim=1)


class FusedProjector(nn.Module):
    """(.., vision_dim) -> (.., llm_dim): fc1 (4x vision_dim), GELU, fc2, GELU, fc3."""

    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
        self.fc3 = nn.Linear(llm_dim, llm_dim)
        self.act_fn1, self.act_fn2 = nn.GELU(), nn.GELU()

    def forward(self, x):
        return self.fc3(self.act_fn2(self.fc2(self.act_fn1(self.fc1(x)))))


class ProprioProjector(nn.Module):
    """(B, proprio_dim) -> (B, llm_dim)."""

    def __init__(self, llm_dim: int, proprio_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(proprio_dim, llm_dim)
        self.fc2 = nn.Linear(llm_dim, llm_dim)
        self.act_fn1 = nn.GELU()

    def forward(self, x):
        return self.fc2(self.act_fn1(self.fc1(x)))


class _ResBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x):
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    def __init__(self, num_blocks: int, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(input_dim)
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu = nn.ReLU()
        self.mlp_resnet_blocks = nn.ModuleList(_ResBlock(hidden_dim) for _ in range(num_blocks))
        self.layer_norm2 = nn.LayerNorm(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        x = self.relu(self.fc1(self.layer_norm1(x)))
        for block in self.mlp_resnet_blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))


class L1RegressionActionHead(nn.Module):
    """(B, chunk*action_dim, D) action-position states -> (B, chunk, action_dim)."""

    def __init__(self, llm_dim: int, action_dim: int, chunk_len: int, num_blocks: int = 2):
        super().__init__()
        self.chunk_len = chunk_len
        self.model = MLPResNet(num_blocks, llm_dim * action_dim, llm_dim, action_dim)

    def forward(self, hidden):
        return self.model(hidden.reshape(hidden.shape[0], self.chunk_len, -1))


def timm_featurizer(model_id: str, img_size: int, act_layer: str | None) -> nn.Module:
    """The timm ViT the checkpoint names (random init; weights are loaded after)."""
    try:
        import timm
    except ImportError:
        raise UserError("model=openvla_oft needs timm for its DINOv2/SigLIP vision towers: "
                        "pip install 'timm>=0.9.10'") from None
    kwargs = {"act_layer": act_layer} if act_layer else {}
    return timm.create_model(model_id, pretrained=False, num_classes=0, img_size=img_size,
                             **kwargs)


# --------------------------------------------------------------------------- image pipeline
def resize_for_policy(img: np.ndarray, size: int, jpeg_quality: int = 95) -> np.ndarray:
    """OFT's `resize_image_for_policy`: JPEG encode/decode, then Lanczos-3 antialiased resize
    to (size, size), rounded to uint8. (OFT uses TensorFlow; PIL is the same filter family,
    not bit-exact.)"""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=jpeg_quality)
    im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.asarray(im.resize((size, size), Image.LANCZOS), dtype=np.uint8)


def center_crop(img: np.ndarray, crop_scale: float) -> np.ndarray:
    """OFT's `center_crop_image`: crop the central sqrt(crop_scale) of each side and resize back
    bilinearly to the input size, sampling as `tf.image.crop_and_resize` does (corner-aligned),
    then back to uint8 as `tf.image.convert_image_dtype` does (floor(x * 255.5))."""
    h, w = img.shape[:2]
    side = min(max(float(np.sqrt(crop_scale)), 0.0), 1.0)
    lo, hi = (1 - side) / 2, (1 + side) / 2
    x = torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None].float() / 255.0
    ys = torch.linspace(lo, hi, h) * 2 - 1  # normalised coords, align_corners=True
    xs = torch.linspace(lo, hi, w) * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1)[None]
    out = F.grid_sample(x, grid, mode="bilinear", align_corners=True).clamp(0, 1)
    out = torch.floor(out * 255.5).clamp(0, 255).to(torch.uint8)
    return out[0].permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------- normalisation
def normalize_proprio(x: np.ndarray, st: dict) -> np.ndarray:
    """BOUNDS_Q99: 2 (x - q01) / (q99 - q01 + 1e-8) - 1 where mask, clipped to [-1, 1]."""
    lo, hi = np.asarray(st["q01"], np.float64), np.asarray(st["q99"], np.float64)
    mask = np.asarray(st.get("mask", np.ones_like(lo, dtype=bool)), dtype=bool)
    y = np.where(mask, 2 * (x - lo) / (hi - lo + 1e-8) - 1, x)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def unnormalize_actions(a: np.ndarray, st: dict) -> np.ndarray:
    """Inverse of BOUNDS_Q99 where mask; unmasked dimensions (the gripper) pass through."""
    lo, hi = np.asarray(st["q01"], np.float64), np.asarray(st["q99"], np.float64)
    mask = np.asarray(st.get("mask", np.ones_like(lo, dtype=bool)), dtype=bool)
    return np.where(mask, 0.5 * (a + 1) * (hi - lo + 1e-8) + lo, a).astype(np.float32)


def libero_gripper(a: np.ndarray) -> np.ndarray:
    """OFT's LIBERO post-processing of the last dimension: [0, 1] -> [-1, 1], sign, then the
    sign flip for OpenVLA models (the model's 1 = open becomes -1 = open for LIBERO)."""
    a = a.copy()
    a[..., -1] = -np.sign(2 * a[..., -1] - 1)
    return a


# --------------------------------------------------------------------------- checkpoint
def _find_one(folder: Path, stem: str) -> Path:
    hits = sorted(p for p in folder.iterdir() if p.name.startswith(f"{stem}--")
                  and "checkpoint" in p.name and p.suffix == ".pt")
    if len(hits) != 1:
        what = "no" if not hits else f"{len(hits)}"
        raise UserError(f"OpenVLA-OFT checkpoint {folder} has {what} `{stem}--*checkpoint.pt` "
                        "file (exactly one needed)")
    return hits[0]


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [n for n in names if not (folder / n).exists()]
        if missing:
            raise UserError(f"OpenVLA-OFT checkpoint {folder} lacks weight shard {missing[0]} "
                            "named in model.safetensors.index.json")
        return [folder / n for n in names]
    single = folder / "model.safetensors"
    if single.exists():
        return [single]
    raise UserError(f"OpenVLA-OFT checkpoint {folder} has no model.safetensors or "
                    "model.safetensors.index.json")


def check_folder(path) -> dict[str, Path]:
    """The files the adapter needs, or a UserError naming the first one missing."""
    if path in (None, "", "???"):
        raise UserError("model=openvla_oft needs the checkpoint folder: "
                        "model.path=/path/to/openvla-7b-oft-finetuned-libero-spatial")
    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        raise UserError(f"OpenVLA-OFT checkpoint folder not found: {folder}")
    files = {"config": folder / "config.json", "stats": folder / "dataset_statistics.json"}
    for p in files.values():
        if not p.exists():
            raise UserError(f"OpenVLA-OFT checkpoint {folder} lacks {p.name}")
    if not any((folder / n).exists() for n in ("tokenizer.json", "tokenizer.model")):
        raise UserError(f"OpenVLA-OFT checkpoint {folder} lacks its tokenizer "
                        "(tokenizer.json / tokenizer.model)")
    files["weights"] = _weight_files(folder)
    files["action_head"] = _find_one(folder, "action_head")
    files["proprio_projector"] = _find_one(folder, "proprio_projector")
    return files


def _component_state(path: Path) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _timm_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Prismatic renames timm's LayerScale `gamma` to `scale_factor`; map it back."""
    return {re.sub(r"\.scale_factor$", ".gamma", k): v for k, v in sd.items()}


def _materialize(module: nn.Module) -> None:
    """Zero-fill parameters/buffers still on the meta device (parts the checkpoint does not
    carry and the forward never uses, e.g. SigLIP's attention-pool head)."""
    for sub in module.modules():
        for name, t in list(sub.named_parameters(recurse=False)):
            if t.is_meta:
                setattr(sub, name, nn.Parameter(torch.zeros(t.shape, dtype=t.dtype),
                                                requires_grad=False))
        for name, t in list(sub.named_buffers(recurse=False)):
            if t is not None and t.is_meta:
                sub.register_buffer(name, torch.zeros(t.shape, dtype=t.dtype))


class OpenVLAOFTAdapter(VLAAdapter):
    """OpenVLA-OFT from a local checkpoint folder. `device`: cuda (default from the run's
    `device`); cpu is accepted for small same-format test checkpoints. `dtype`: auto (bfloat16 on
    cuda, float32 on cpu), bfloat16 or float32. `featurizer_factory(model_id, img_size,
    act_layer)` builds each vision tower (default: timm)."""

    name = "openvla_oft"

    def __init__(self, path: str | None = None, device: str = "cuda", dtype: str = "auto",
                 unnorm_key: str | None = None, views=("agentview", "robot0_eye_in_hand"),
                 chunk_len: int = 8, action_dim: int = 7, head_blocks: int = 2,
                 center_crop: bool = True, crop_scale: float = 0.9, jpeg_quality: int = 95,
                 threads: int = 0, featurizer_factory: Callable | None = None):
        files = check_folder(path)
        self.path = Path(str(path)).expanduser()
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UserError("model=openvla_oft with device=cuda, but torch sees no CUDA GPU "
                            f"(torch {torch.__version__}, cuda build: {torch.version.cuda})")
        if threads:
            torch.set_num_threads(threads)
        self.device = dev
        if dtype == "auto":
            dtype = "bfloat16" if dev.type == "cuda" else "float32"
        self.dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32,
                      "float16": torch.float16}[dtype]
        self.view_names = tuple(views)
        self.chunk_len, self.action_dim = int(chunk_len), int(action_dim)
        self.center_crop, self.crop_scale = bool(center_crop), float(crop_scale)
        self.jpeg_quality = int(jpeg_quality)

        cfg = json.loads(files["config"].read_text())
        self.config = cfg
        if not cfg.get("use_fused_vision_backbone", False):
            raise UserError(f"{files['config']}: expected a fused DINOv2+SigLIP backbone "
                            "(use_fused_vision_backbone: true)")
        self._stats_all = json.loads(files["stats"].read_text())
        self.unnorm_key = self._pick_unnorm_key(unnorm_key)
        self.stats = self._stats_all[self.unnorm_key]
        if "proprio" not in self.stats or "action" not in self.stats:
            raise UserError(f"dataset_statistics.json[{self.unnorm_key!r}] lacks action/proprio "
                            "statistics")
        self.proprio_dim = len(self.stats["proprio"]["q01"])
        self._build(cfg, files, featurizer_factory or timm_featurizer, int(head_blocks))
        self._load_preprocessor()
        self._load_tokenizer()
        self._prompt_ids = torch.zeros(0, dtype=torch.long)

    # ------------------------------------------------------------------ loading
    def _pick_unnorm_key(self, key):
        keys = sorted(self._stats_all)
        if key is None:
            if len(keys) != 1:
                raise UserError(f"dataset_statistics.json has {len(keys)} datasets; pick one "
                                f"with model.unnorm_key=<{'|'.join(keys)}>")
            return keys[0]
        if key not in self._stats_all:
            raise UserError(f"model.unnorm_key={key!r} not in dataset_statistics.json "
                            f"(known: {', '.join(keys)})")
        return key

    def _build(self, cfg, files, factory, head_blocks):
        from safetensors import safe_open
        from transformers import LlamaConfig, LlamaModel

        ids = cfg["timm_model_ids"]
        sizes = cfg.get("image_sizes", [224, 224])
        acts = cfg.get("timm_override_act_layers", [None, None]) or [None, None]
        self.image_size = int(sizes[0])
        text = dict(cfg.get("text_config") or {})
        text.pop("architectures", None)
        lcfg = LlamaConfig(**{k: v for k, v in text.items() if k != "model_type"})
        self.llm_config = lcfg
        d = lcfg.hidden_size
        # Built on the meta device (no 7B random init), then the checkpoint's tensors are
        # assigned in place; anything the checkpoint lacks is rebuilt or zero-filled below.
        with torch.device("meta"):
            dino = factory(ids[0], int(sizes[0]), acts[0])
            siglip = factory(ids[1], int(sizes[1]), acts[1])
            self.vision = FusedVisionBackbone(dino, siglip, len(self.view_names))
            self.projector = FusedProjector(self.vision.embed_dim, d)
            self.llm = LlamaModel._from_config(lcfg, attn_implementation="sdpa")
            self.proprio_projector = ProprioProjector(d, self.proprio_dim)
            self.action_head = L1RegressionActionHead(d, self.action_dim, self.chunk_len,
                                                      head_blocks)
        self.n_patches = int(dino.patch_embed.num_patches)
        self.grid = int(round(self.n_patches ** 0.5))
        self.patch_size = self.image_size // self.grid

        groups = {"vision_backbone.featurizer.": {}, "vision_backbone.fused_featurizer.": {},
                  "projector.": {}, "language_model.model.": {}}
        load_dev = str(self.device) if self.device.type == "cuda" else "cpu"
        for f in files["weights"]:
            with safe_open(str(f), "pt", device=load_dev) as sf:
                for k in sf.keys():
                    for prefix, dst in groups.items():
                        if k.startswith(prefix):
                            dst[k[len(prefix):]] = sf.get_tensor(k)
                            break
        targets = [(dino, _timm_keys(groups["vision_backbone.featurizer."]), "DINOv2 featurizer"),
                   (siglip, _timm_keys(groups["vision_backbone.fused_featurizer."]),
                    "SigLIP featurizer"),
                   (self.projector, groups["projector."], "projector"),
                   (self.llm, groups["language_model.model."], "language model"),
                   (self.proprio_projector, _component_state(files["proprio_projector"]),
                    files["proprio_projector"].name),
                   (self.action_head, _component_state(files["action_head"]),
                    files["action_head"].name)]
        for module, sd, what in targets:
            self._load(module, sd, what)
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        for m in (self.vision, self.projector, self.llm, self.proprio_projector,
                  self.action_head):
            _materialize(m)
            m.to(device=self.device, dtype=self.dtype).eval()
        # inv_freq is a non-persistent float32 buffer (never in the checkpoint): rebuild it.
        self.llm.rotary_emb = LlamaRotaryEmbedding(lcfg).to(self.device)

    @staticmethod
    def _load(module: nn.Module, sd: dict, what: str) -> None:
        own = module.state_dict()
        missing = [k for k in own if k not in sd]
        # timm's SigLIP carries an attention-pool head Prismatic never runs; allow its absence.
        missing = [k for k in missing if not k.startswith(("attn_pool.", "head.", "fc_norm."))]
        if missing:
            raise UserError(f"OpenVLA-OFT checkpoint: {what} weights lack {missing[0]} "
                            f"(and {len(missing) - 1} more); is this an OpenVLA-OFT checkpoint?")
        bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
        if bad:
            k = bad[0]
            raise UserError(f"OpenVLA-OFT checkpoint: {what} weight {k} has shape "
                            f"{tuple(sd[k].shape)}, expected {tuple(own[k].shape)}")
        module.load_state_dict({k: sd[k] for k in own if k in sd}, strict=False, assign=True)

    def _load_preprocessor(self):
        p = self.path / "preprocessor_config.json"
        pc = json.loads(p.read_text()) if p.exists() else {}
        self.means = torch.tensor(pc.get("means", DEFAULT_MEANS), dtype=torch.float32)
        self.stds = torch.tensor(pc.get("stds", DEFAULT_STDS), dtype=torch.float32)

    def _load_tokenizer(self):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        tok = self.tokenizer
        empty = tok.convert_tokens_to_ids("▁")
        self.empty_id = None if empty in (None, tok.unk_token_id) else int(empty)
        self.bos_id, self.stop_id = int(tok.bos_token_id), int(tok.eos_token_id)

    def describe(self) -> dict:
        n = sum(p.numel() for m in (self.vision, self.projector, self.llm,
                                    self.proprio_projector, self.action_head)
                for p in m.parameters())
        return {"name": self.name, "path": str(self.path), "unnorm_key": self.unnorm_key,
                "params": n, "dtype": str(self.dtype), "device": str(self.device),
                "timm_model_ids": self.config.get("timm_model_ids"),
                "center_crop": self.center_crop}

    # ------------------------------------------------------------------ inputs
    def reset(self, instruction: str) -> None:
        ids = self.tokenizer(PROMPT.format(task=instruction.lower())).input_ids
        if not ids or ids[0] != self.bos_id:
            ids = [self.bos_id] + list(ids)
        if self.empty_id is not None and ids[-1] != self.empty_id:
            ids = list(ids) + [self.empty_id]  # OFT inserts it as at training time
        self._prompt_ids = torch.tensor(ids, dtype=torch.long)

    def layout(self) -> TokenLayout:
        n_prompt = len(self._prompt_ids) - 1  # after BOS; the last one is read by the head
        n_act = self.chunk_len * self.action_dim
        parts = [("bos", OTHER, 1)] + [(v, VISUAL, self.n_patches) for v in self.view_names]
        parts += [("proprio", OTHER, 1), ("instruction", TEXT, n_prompt - 1),
                  ("action", ACTION, n_act), ("action_last", OTHER, 1), ("stop", OTHER, 1)]
        return TokenLayout.build(parts, patch_grid=(self.grid, self.grid))

    def _images(self, images: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Each view as the (S, S, 3) uint8 image the model sees (resize, centre crop)."""
        missing = [v for v in self.view_names if v not in images]
        if missing:
            raise ValueError(f"observation lacks camera views {missing}")
        out = []
        for v in self.view_names:
            img = np.ascontiguousarray(images[v])
            if img.shape[:2] != (self.image_size, self.image_size):
                img = resize_for_policy(img, self.image_size, self.jpeg_quality)
            if self.center_crop:
                img = center_crop(img, self.crop_scale)
            out.append(img)
        return out

    def pixel_values(self, images: dict[str, np.ndarray]) -> torch.Tensor:
        """(1, 6 * n_views, S, S): per view, the image normalised for DINOv2 then for SigLIP."""
        chans = []
        for img in self._images(images):
            x = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0
            for mean, std in zip(self.means, self.stds, strict=True):
                chans.append((x - mean[:, None, None]) / std[:, None, None])
        return torch.cat(chans, dim=0)[None]

    def patches(self, images):
        p, g = self.patch_size, self.grid
        out = {}
        for v, img in zip(self.view_names, self._images(images), strict=True):
            out[v] = img.reshape(g, p, g, p * 3).transpose(0, 2, 1, 3).reshape(g * g, -1)
        return out

    @torch.inference_mode()
    def encode(self, images, proprio):
        dev, dt = self.device, self.dtype
        pix = self.pixel_values(images).to(dev, dt)
        vis = self.projector(self.vision(pix))  # (1, V*N, D)
        prop = normalize_proprio(np.asarray(proprio, np.float64), self.stats["proprio"])
        prop = self.proprio_projector(torch.from_numpy(prop).to(dev, dt)[None])[:, None]
        emb = self.llm.embed_tokens
        ids = self._prompt_ids.to(dev)
        text = emb(ids)[None]  # BOS + prompt
        placeholders = torch.zeros(1, self.chunk_len * self.action_dim, text.shape[-1],
                                   device=dev, dtype=text.dtype)
        stop = emb(torch.tensor([[self.stop_id]], device=dev))
        embeds = torch.cat([text[:, :1], vis.to(text.dtype), prop.to(text.dtype), text[:, 1:],
                            placeholders, stop], dim=1)
        return embeds, self.layout()

    # ------------------------------------------------------------------ decoder / head
    def decoder(self) -> DecoderSpec:
        c = self.llm.config
        return DecoderSpec(list(self.llm.layers), self.llm.rotary_emb, self.llm.norm,
                           c.num_attention_heads, c.num_key_value_heads,
                           c.hidden_size // c.num_attention_heads, causal=False)

    def model_spec(self, layout):
        c = self.llm.config
        return ModelSpec(c.num_hidden_layers, c.num_attention_heads, c.hidden_size, False,
                         layout, self.patch_size,
                         model_id=f"openvla_oft-{self.path.resolve().name}")

    @torch.inference_mode()
    def head(self, action_hidden):
        return self.action_head(action_hidden.to(self.dtype))[0].float()

    def to_env_actions(self, actions):
        a = unnormalize_actions(actions.detach().float().cpu().numpy(), self.stats["action"])
        return libero_gripper(a)

    @torch.inference_mode()
    def reference_forward(self, input_embeds):
        """The LlamaModel's own forward over the full sequence with an all-true 4D mask
        (bidirectional, as OFT runs it); the 56 final-normed states the head reads."""
        n = input_embeds.shape[1]
        mask = torch.ones(1, 1, n, n, dtype=torch.bool, device=input_embeds.device)
        out = self.llm(inputs_embeds=input_embeds, attention_mask=mask,
                       position_ids=torch.arange(n, device=input_embeds.device)[None])
        seg = self.layout()["action"]
        return out.last_hidden_state[:, seg.start:seg.end]


class ArchitectureOnly:
    """`model=openvla_oft_7b` describes the 7B architecture for `python -m bench.flops`; it has
    no weights and cannot run episodes."""

    def __init__(self, **_):
        raise UserError("model=openvla_oft_7b is architecture-only (for `python -m bench.flops "
                        "model=openvla_oft_7b`); to run episodes use model=openvla_oft "
                        "model.path=/local/checkpoint device=cuda")
