"""EfficientVLA (Yang et al., 2025; no public code, follows the paper): calibrated layer
skipping + relevance/diversity visual-token selection at an early layer. The diffusion-head
caching part does not apply to an L1-regression action head.

(a) Layer skipping. Importance of layer l = 1 - mean over recorded queries and tokens of
    cos(x_in, x_out), its input and output hidden states. The `skip_layers` least important
    layers (paper: 4 of 32, i.e. keep 28; scaled) are skipped.
    Calibration (decision): results are cached per model in `results/calibration/{id}.json`
    (`calibration: auto`; id = the adapter's `model_id` (name + weights hash) when it gives one,
    else `model_name`, else the running Hydra job's model option) or in
    the file `calibration` names. If the file exists (and matches the model's depth/width) it is
    loaded; otherwise the method calibrates online on its first `calib_queries` policy queries,
    which run in full (no skipping, no token pruning, so they are recorded on unpruned hidden
    states), then writes the file and skips from the next query on. `calibrate()` does the same
    offline from a list of (embeds, layout) through the shared loop; `save_calibration()` writes
    the file. A retrained model needs its file deleted (or `calibration=<new path>`).
(b) Visual tokens. After layer K-1 (`prune_layer` K, paper scale; if layer K-1 is skipped, the
    first layer run after it), visual tokens are scored by text->visual attention (mean over
    heads and instruction rows); keep `k_final` in total (paper 112 over two 256-token views;
    scaled) = the top `k_key` by score, then of the remaining budget a share `relevance_ratio`
    more by score and the rest the most diverse: greedy max-min cosine distance, on that layer's
    hidden states, to the tokens already kept. `k_final: match_specprune` solves for the count
    giving SpecPrune's mean visual tokens per layer (as FastV; skipped layers count like the
    others, as the loop records them).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pruning.base import AttentionScores, ModelSpec, PruningMethod
from pruning.common import (
    MATCH,
    check_reference,
    cosine_distance,
    greedy_maxmin,
    hydra_choice,
    round_half_up,
    scale_count,
    scale_layer,
    solve_keep,
    specprune_reference,
    view_length,
)


class _LayerCosine:
    """Accumulates 1 - cos(x_in, x_out) per layer (mean over tokens, then over queries)."""

    def __init__(self):
        self.sums: dict[int, float] = {}
        self.n: dict[int, int] = {}
        self._x_in: torch.Tensor | None = None

    def before(self, stream) -> None:
        self._x_in = stream.hidden

    def after(self, layer: int, stream) -> None:
        cos = torch.nn.functional.cosine_similarity(self._x_in[0].float(),
                                                    stream.hidden[0].float(), dim=-1)
        self.sums[layer] = self.sums.get(layer, 0.0) + float(1.0 - cos.mean())
        self.n[layer] = self.n.get(layer, 0) + 1

    def importance(self, num_layers: int) -> list[float]:
        return [self.sums[li] / self.n[li] for li in range(num_layers)]


class _Recorder(PruningMethod):
    def __init__(self):
        self.acc = _LayerCosine()

    def kv_reuse(self, layer, stream):  # the only hook that sees a layer's input stream
        self.acc.before(stream)
        return None

    def after_layer(self, layer, stream, scores):
        self.acc.after(layer, stream)


def calibrate(decoder, samples) -> list[float]:
    """Layer importance 1 - mean cos(x_in, x_out) over `samples`, a list of (embeds, layout)."""
    from pruning.forward import pruned_forward

    rec = _Recorder()
    with torch.inference_mode():
        for embeds, layout in samples:
            pruned_forward(decoder, embeds, layout, rec)
    return rec.acc.importance(len(decoder.layers))


def save_calibration(path: str | Path, spec: ModelSpec, importance: list[float], n_queries: int,
                     model: str | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": model, "num_layers": spec.num_layers,
                                "hidden_size": spec.hidden_size, "n_queries": n_queries,
                                "importance": importance}, indent=1) + "\n")


def skip_set(importance: list[float], n_skip: int) -> set[int]:
    """The n_skip least important layers (ties: the lower index first)."""
    order = sorted(range(len(importance)), key=lambda li: (importance[li], li))
    return set(order[:n_skip])


class EfficientVLA(PruningMethod):
    name = "efficientvla"
    uses_alpha = False

    def __init__(self, alpha: float | None = None, skip_layers: int = 4, prune_layer: int = 2,
                 k_final: int | str = 112, k_key: int = 8, relevance_ratio: float = 0.5,
                 calibration: str = "auto", calib_queries: int = 8,
                 model_name: str | None = None, match_alpha: float = 0.8,
                 match_model: str | None = None, match_suite: str | None = None,
                 match_root: str = "results/runs"):
        self.alpha = alpha
        self.skip_layers = int(skip_layers)
        self.prune_layer = int(prune_layer)
        self.k_final = k_final
        self.k_key = int(k_key)
        self.relevance_ratio = float(relevance_ratio)
        self.calib_queries = int(calib_queries)
        model = model_name or hydra_choice("model")
        self._calibration = calibration
        if calibration == "auto":
            self.calib_path = Path("results/calibration") / f"{model}.json" if model else None
        else:
            self.calib_path = Path(calibration)
        self._ref = None
        if k_final == MATCH:
            self._ref = specprune_reference(match_model, match_suite, match_root, match_alpha)
        elif not isinstance(k_final, int) or k_final < 1:
            raise ValueError(f"efficientvla k_final must be a positive int or {MATCH!r}")
        self.importance: list[float] | None = None
        self._acc = _LayerCosine()
        self._seen = 0
        self.spec = None

    # ---- calibration state ---------------------------------------------------------------
    def _load(self, spec: ModelSpec) -> None:
        if self._calibration == "auto" and spec.model_id:
            # keyed by the weights, so a retrained model never reuses a stale calibration
            self.calib_path = Path("results/calibration") / f"{spec.model_id}.json"
        if self.importance is not None or self.calib_path is None or not self.calib_path.exists():
            return
        data = json.loads(self.calib_path.read_text())
        if data.get("num_layers") == spec.num_layers and data.get("hidden_size") == \
                spec.hidden_size:
            self.importance = [float(x) for x in data["importance"]]

    @property
    def calibrating(self) -> bool:
        return self.importance is None

    def _finish_calibration(self) -> None:
        self.importance = self._acc.importance(self.spec.num_layers)
        if self.calib_path is not None:
            save_calibration(self.calib_path, self.spec, self.importance, self._seen,
                             self.calib_path.stem)
        self._plan()

    def _plan(self) -> None:
        L = self.spec.num_layers
        self.skipped = skip_set(self.importance, self.n_skip) if self.importance else set()
        first = self.k_layer - 1
        run = [li for li in range(L) if li not in self.skipped]
        after = [li for li in run if li >= first]
        self.score_layer = after[0] if after else (run[-1] if run else first)
        n_vis = self.spec.layout.n_visual
        if self._ref is not None:
            self.keep_n = solve_keep(self._ref["mean"], self.score_layer + 1, L, n_vis)
        else:
            self.keep_n = min(scale_count(int(self.k_final), self.n_view), n_vis)
        self.key_n = min(scale_count(self.k_key, self.n_view), self.keep_n)
        self.rel_n = round_half_up(self.relevance_ratio * (self.keep_n - self.key_n))

    def setup(self, spec: ModelSpec) -> None:
        self.spec = spec
        L = spec.num_layers
        self.n_view = view_length(spec.layout)
        self.n_skip = min(round_half_up(self.skip_layers * L / 32), L - 1)
        self.k_layer = max(scale_layer(self.prune_layer, L), 1)
        if self._ref is not None:
            check_reference(self._ref, L, spec.layout.n_visual)
        self._load(spec)
        self._plan()

    # ---- hooks ---------------------------------------------------------------------------
    def skip_layer(self, layer: int) -> bool:
        return not self.calibrating and layer in self.skipped

    def kv_reuse(self, layer: int, stream):
        if self.calibrating:
            self._acc.before(stream)
        return None

    def score_request(self, layer: int) -> str | None:
        return "text" if not self.calibrating and layer == self.score_layer else None

    def after_layer(self, layer: int, stream, scores: AttentionScores | None) -> None:
        if self.calibrating:
            self._acc.after(layer, stream)
            return
        if layer != self.score_layer or scores is None:
            return
        s, idx = scores.visual_mean(self.spec.layout)
        if self.keep_n >= len(idx):
            return
        stream.keep_visual(self.select(s, idx, stream))

    def select(self, s: torch.Tensor, idx: torch.Tensor, stream) -> torch.Tensor:
        """(k,) scores of the (k,) visual positions idx -> the original positions kept."""
        order = torch.argsort(s, descending=True, stable=True)
        by_score = order[: self.key_n + self.rel_n]
        n_div = self.keep_n - len(by_score)
        if n_div <= 0:
            return idx[by_score]
        where = torch.full((self.spec.layout.n_tokens,), -1, dtype=torch.long)
        ok = stream.orig_idx >= 0
        where[stream.orig_idx[ok]] = torch.nonzero(ok).flatten()
        feats = stream.hidden[0, where[idx]]
        div = greedy_maxmin(cosine_distance(feats), n_div, seed=by_score)
        return idx[torch.cat([by_score, div])]

    def observe(self, ctx, actions) -> None:
        if self.calibrating:
            self._seen += 1
            if self._seen >= self.calib_queries:
                self._finish_calibration()

    def query_stats(self) -> dict:
        return {"calibrating": self.calibrating}

    def scaled(self) -> dict:
        out = {"skip_layers": self.n_skip, "prune_layer": self.k_layer,
               "score_layer": self.score_layer, "k_final": self.keep_n, "k_key": self.key_n,
               "k_relevance": self.rel_n, "skipped": sorted(self.skipped),
               "calibration": str(self.calib_path) if self.calib_path else None}
        if self._ref is not None:
            out["matched_mean_visual"] = self._ref["mean"]
        return out
