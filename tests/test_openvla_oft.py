"""openvla_oft on the CPU: a tiny checkpoint folder in OpenVLA-OFT's format, built here (random
weights, same module names and files), loaded through the real loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from bench.errors import UserError
from bench.models.openvla_oft import (
    FusedProjector,
    L1RegressionActionHead,
    OpenVLAOFTAdapter,
    ProprioProjector,
    center_crop,
    libero_gripper,
    normalize_proprio,
    resize_for_policy,
    unnormalize_actions,
)
from bench.suites.base import Observation
from pruning.forward import DecoderSpec, pruned_forward
from pruning.layout import ACTION, OTHER, TEXT, VISUAL
from pruning.none import NoPruning

ROOT = Path(__file__).resolve().parent.parent
DINO, SIGLIP = "vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"
IMG, D, LAYERS = 56, 32, 3  # 4x4 patches of 14 px per view
WORDS = ["In", ":", "What", "action", "should", "the", "robot", "take", "to", "?", "Out", "pick",
         "up", "black", "bowl", "and", "place", "it", "on", "plate"]


class TinyViT(nn.Module):
    """The slice of timm's VisionTransformer interface Prismatic uses: `embed_dim`,
    `patch_embed.num_patches`, `blocks`, `get_intermediate_layers(x, n)` (prefix tokens
    stripped, no final norm)."""

    def __init__(self, embed_dim: int, img_size: int, prefix: int):
        super().__init__()
        self.embed_dim, self.prefix = embed_dim, prefix
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, embed_dim, 14, 14)
        self.patch_embed.num_patches = (img_size // 14) ** 2
        self.reg_token = nn.Parameter(torch.randn(1, max(prefix, 1), embed_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, self.patch_embed.num_patches, embed_dim))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(embed_dim, 2, 2 * embed_dim, dropout=0.0,
                                       batch_first=True, norm_first=True) for _ in range(3))

    def get_intermediate_layers(self, x, n):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2) + self.pos_embed
        if self.prefix:
            x = torch.cat([self.reg_token[:, :self.prefix].expand(x.shape[0], -1, -1), x], 1)
        outs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in set(n):
                outs.append(x[:, self.prefix:])
        return tuple(outs)


def tiny_factory(model_id, img_size, act_layer):
    return TinyViT(24, img_size, 5) if "dinov2" in model_id else TinyViT(20, img_size, 0)


def _tokenizer(folder: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3}
    vocab.update({w: i + 4 for i, w in enumerate(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(str(folder))


def make_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A folder with OpenVLA-OFT's files: config.json (auto_map to remote code that is never
    run), model.safetensors with Prismatic key names, DDP-prefixed head/projector .pt files,
    dataset_statistics.json with a gripper mask, a tokenizer, preprocessor_config.json."""
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    text = {"model_type": "llama", "hidden_size": D, "intermediate_size": 2 * D,
            "num_hidden_layers": LAYERS, "num_attention_heads": 4, "num_key_value_heads": 4,
            "vocab_size": 64, "max_position_embeddings": 256}
    cfg = {"model_type": "openvla", "architectures": ["OpenVLAForActionPrediction"],
           "auto_map": {"AutoConfig": "configuration_prismatic.OpenVLAConfig",
                        "AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction"},
           "use_fused_vision_backbone": True, "timm_model_ids": [DINO, SIGLIP],
           "image_sizes": [IMG, IMG], "timm_override_act_layers": [None, None],
           "text_config": text}
    (folder / "config.json").write_text(json.dumps(cfg))
    dino, siglip = tiny_factory(DINO, IMG, None), tiny_factory(SIGLIP, IMG, None)
    proj = FusedProjector(44, D)
    llm = LlamaModel(LlamaConfig(**{k: v for k, v in text.items() if k != "model_type"}))
    state = {}
    for prefix, mod in [("vision_backbone.featurizer.", dino),
                        ("vision_backbone.fused_featurizer.", siglip),
                        ("projector.", proj), ("language_model.model.", llm)]:
        state.update({prefix + k: v.contiguous() for k, v in mod.state_dict().items()})
    state["language_model.lm_head.weight"] = torch.randn(64, D)
    save_file(state, str(folder / "model.safetensors"))
    head, prop = L1RegressionActionHead(D, 7, 8), ProprioProjector(D, 8)
    torch.save({"module." + k: v for k, v in head.state_dict().items()},
               folder / "action_head--150000_checkpoint.pt")
    torch.save({"module." + k: v for k, v in prop.state_dict().items()},
               folder / "proprio_projector--150000_checkpoint.pt")
    stats = {"libero_spatial_no_noops": {
        "action": {"q01": [-0.5] * 6 + [0.0], "q99": [0.5] * 6 + [1.0],
                   "mask": [True] * 6 + [False]},
        "proprio": {"q01": [-1.0] * 8, "q99": [1.0] * 8}}}
    (folder / "dataset_statistics.json").write_text(json.dumps(stats))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"means": [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]],
         "stds": [[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]]}))
    _tokenizer(folder)
    return folder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("oft") / "ckpt")


@pytest.fixture(scope="module")
def adapter(ckpt):
    a = OpenVLAOFTAdapter(str(ckpt), device="cpu", featurizer_factory=tiny_factory)
    a.reset("Pick up the black bowl and place it on the plate")
    return a


def _obs(seed=0, size=64):
    rng = np.random.default_rng(seed)
    imgs = {v: rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            for v in ("agentview", "robot0_eye_in_hand")}
    return Observation(imgs, rng.uniform(-1, 1, 8).astype(np.float32))


def test_layout_matches_oft_sequence(adapter):
    embeds, lay = adapter.encode(*vars(_obs()).values())
    assert embeds.shape == (1, lay.n_tokens, D)
    names = [(s.name, s.kind, s.length) for s in lay.segments]
    n_prompt = len(adapter._prompt_ids) - 1
    assert names == [("bos", OTHER, 1), ("agentview", VISUAL, 16),
                     ("robot0_eye_in_hand", VISUAL, 16), ("proprio", OTHER, 1),
                     ("instruction", TEXT, n_prompt - 1), ("action", ACTION, 56),
                     ("action_last", OTHER, 1), ("stop", OTHER, 1)]
    ids = adapter._prompt_ids.tolist()
    assert ids[0] == 1 and ids[-1] == 3  # BOS first, the empty token "▁" appended
    emb = adapter.llm.embed_tokens.weight
    act = lay["action"]
    # the head reads the last prompt token + placeholders 0..54; placeholders are zeros
    assert torch.equal(embeds[0, act.start], emb[3])
    assert torch.count_nonzero(embeds[0, act.start + 1: act.end + 1]) == 0
    assert torch.equal(embeds[0, lay["stop"].start], emb[2])
    # OFT's slice: last_hidden_states[:, NUM_PATCHES + NUM_PROMPT_TOKENS : + 56]
    num_patches = 2 * 16 + 1  # + proprio
    assert act.start == num_patches + n_prompt


def test_unpruned_equals_model_forward_bidirectional(adapter):
    embeds, lay = adapter.encode(*vars(_obs(1)).values())
    res = pruned_forward(adapter.decoder(), embeds, lay, NoPruning())
    ref = adapter.reference_forward(embeds)
    torch.testing.assert_close(res.hidden, ref, atol=2e-5, rtol=1e-4)
    assert res.visual_per_layer == [32] * LAYERS
    spec = adapter.decoder()
    causal = DecoderSpec(spec.layers, spec.rotary_emb, spec.norm, spec.num_heads,
                         spec.num_kv_heads, spec.head_dim, causal=True)
    res_c = pruned_forward(causal, embeds, lay, NoPruning())
    assert (res_c.hidden - ref).abs().max() > 1e-3  # bidirectional attention is really used


def test_preprocessing_and_postprocessing():
    img = np.full((256, 256, 3), 77, np.uint8)
    assert resize_for_policy(img, 224).shape == (224, 224, 3)
    np.testing.assert_array_equal(center_crop(np.full((224, 224, 3), 77, np.uint8), 0.9), 77)
    ramp = np.tile(np.arange(224, dtype=np.uint8)[None, :, None], (224, 1, 3))
    out = center_crop(ramp, 0.9)
    side = np.sqrt(0.9)
    x0 = (1 - side) / 2 * 223  # crop_and_resize samples corner-aligned
    assert out[0, 0, 0] == int(np.floor((x0 / 255) * 255.5))
    assert out[0, -1, 0] == int(np.floor(((223 - x0) / 255) * 255.5))
    st = {"q01": [-0.5] * 6 + [0.0], "q99": [0.5] * 6 + [1.0], "mask": [True] * 6 + [False]}
    a = unnormalize_actions(np.array([[1, -1, 0, 0, 0, 0, 0.8], [0, 0, 0, 0, 0, 0, 0.2]]), st)
    np.testing.assert_allclose(a[0, :3], [0.5, -0.5, 0.0], atol=1e-6)
    assert a[0, 6] == pytest.approx(0.8)  # gripper unmasked: passes through
    env = libero_gripper(a)
    assert env[0, 6] == -1.0 and env[1, 6] == 1.0  # model 1=open -> LIBERO -1=open
    p = normalize_proprio(np.array([2.0, 0.0]), {"q01": [-1, -1], "q99": [1, 1],
                                                 "mask": [True, False]})
    np.testing.assert_allclose(p, [1.0, 0.0])


def _methods():
    return sorted(p.stem for p in (ROOT / "configs" / "method").glob("*.yaml"))


@pytest.mark.parametrize("method_name", _methods())
def test_every_method_runs_on_oft(adapter, method_name):
    from bench.policy import Policy
    from bench.run import _instantiate

    node = OmegaConf.load(ROOT / "configs" / "method" / f"{method_name}.yaml")
    if isinstance(node.get("keep"), str):  # matching a recorded SpecPrune run: not here
        node.keep = 64
    try:
        method = _instantiate(node, alpha=0.8)
    except Exception as exc:  # a method being written elsewhere may not import yet
        pytest.skip(f"{method_name} cannot be instantiated here: {exc}")
    policy = Policy(adapter, method, count_flops=True)
    policy.reset("pick up the black bowl and place it on the plate")
    for q in range(3):
        obs = _obs(q)
        past = {k: _obs(q + 10 + k).images for k in policy.frames_needed()}
        actions, rec = policy(obs, step=q * 8, past_images=past)
        assert actions.shape == (8, 7) and np.isfinite(actions).all()
        assert set(np.unique(actions[:, -1])) <= {-1.0, 1.0}
        assert len(rec["kept_per_layer"]) == LAYERS
        assert rec["flops_decoder"] > 0


def test_missing_things_are_one_line_user_errors(ckpt, tmp_path):
    with pytest.raises(UserError, match="model.path"):
        OpenVLAOFTAdapter(None, device="cpu")
    with pytest.raises(UserError, match="folder not found"):
        OpenVLAOFTAdapter(str(tmp_path / "nope"), device="cpu")
    partial = make_checkpoint(tmp_path / "partial", seed=1)
    (partial / "action_head--150000_checkpoint.pt").unlink()
    with pytest.raises(UserError, match="action_head"):
        OpenVLAOFTAdapter(str(partial), device="cpu", featurizer_factory=tiny_factory)
    (partial / "dataset_statistics.json").unlink()
    with pytest.raises(UserError, match="dataset_statistics.json"):
        OpenVLAOFTAdapter(str(partial), device="cpu", featurizer_factory=tiny_factory)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            OpenVLAOFTAdapter(str(ckpt), device="cuda", featurizer_factory=tiny_factory)


def test_cli_missing_checkpoint_exits_2(tmp_path):
    cmd = [sys.executable, "-m", "bench.run", "model=openvla_oft", "suite=fake",
           f"model.path={tmp_path / 'missing'}", "device=cuda", f"out_root={tmp_path}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "not found" in last
