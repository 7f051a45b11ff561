"""The policy as the runner sees it: model adapter + pruning method, timed and FLOP-counted.

One call = one policy query: observation in, a chunk of env actions out, plus a record with the
end-to-end latency, its stage breakdown (vision, decoder, head, method), FLOPs and the visual
tokens present at each decoder layer. Everything the method adds (patch similarity, scores,
bookkeeping) is inside the latency and shown as the `method` stage.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from bench.metrics.flops import DecoderFlops, count_flops
from bench.models.base import VLAAdapter
from bench.suites.base import Observation
from pruning.base import PruningMethod, QueryContext
from pruning.forward import pruned_forward


class Policy:
    def __init__(self, model: VLAAdapter, method: PruningMethod, count_flops: bool = True):
        self.model = model
        self.method = method
        self.count_flops = count_flops
        self._dec = model.decoder()
        self._dec_flops = DecoderFlops(self._dec)
        self._fixed_flops: dict[str, int] | None = None
        self.query_idx = 0
        self.layout = None  # the token layout of the last query

    def _sync(self) -> None:
        if self.model.device.type == "cuda":
            torch.cuda.synchronize()

    def reset(self, instruction: str) -> None:
        self.model.reset(instruction)
        self.method.setup(self.model.model_spec(self.model.layout()))
        self.method.reset()
        self.query_idx = 0
        self.layout = None  # the token layout of the last query

    def frames_needed(self) -> list[int]:
        return self.method.frames_needed()

    def _count_fixed(self, obs: Observation, action_hidden: torch.Tensor) -> dict[str, int]:
        """Vision and head FLOPs: the same every query, counted once."""
        with torch.inference_mode():
            vision, _ = count_flops(self.model.encode, obs.images, obs.proprio)
            head, _ = count_flops(self.model.head, action_hidden)
        return {"vision": vision, "head": head}

    @torch.inference_mode()
    def __call__(self, obs: Observation, step: int,
                 past_images: dict[int, dict[str, np.ndarray]] | None = None
                 ) -> tuple[np.ndarray, dict[str, Any]]:
        clock = time.perf_counter
        self._sync()
        t0 = clock()
        embeds, layout = self.model.encode(obs.images, obs.proprio)
        self.layout = layout
        self._sync()
        t1 = clock()
        ctx = QueryContext(layout=layout, step=step, query_idx=self.query_idx, patches={},
                           input_embeds=embeds)
        if getattr(self.method, "needs_patches", False):
            ctx.patches = self.model.patches(obs.images)
            ctx.past_patches = {k: self.model.patches(v) for k, v in (past_images or {}).items()}
        t2 = clock()
        res = pruned_forward(self._dec, embeds, layout, self.method, ctx)
        self._sync()
        t3 = clock()
        actions = self.model.head(res.hidden)
        self._sync()
        t4 = clock()
        self.method.observe(ctx, actions)
        t5 = clock()
        env_actions = self.model.to_env_actions(actions)
        t6 = clock()
        stages = {
            "vision": t1 - t0,
            "decoder": (t3 - t2) - res.method_s,
            "head": (t4 - t3) + (t6 - t5),
            "method": (t2 - t1) + res.method_s + (t5 - t4),
        }
        rec: dict[str, Any] = {
            "query_idx": self.query_idx,
            "step": step,
            "latency_ms": (t6 - t0) * 1e3,
            "stages": {k: v * 1e3 for k, v in stages.items()},
            "kept_per_layer": res.visual_per_layer,
            "visual_total": layout.n_visual,
            "kept_visual_idx": res.extra.get("final_visual_idx"),
            "method": self.method.query_stats(),
        }
        if ctx.patches:  # raw patches cut for the method: part of its time (`method` stage)
            rec["method"]["ms_patch_extract"] = (t2 - t1) * 1e3
        if self.count_flops:
            if self._fixed_flops is None:
                self._fixed_flops = self._count_fixed(obs, res.hidden)
            dec, meth = self._dec_flops.count(res.shapes)
            rec["flops_decoder"] = dec
            rec["flops_method"] = meth
            rec["flops_total"] = dec + meth + sum(self._fixed_flops.values())
        self.query_idx += 1
        return env_actions, rec
