# ruff: noqa  (one-off measurement script kept verbatim as run)
"""Decoder latency by size and token count (sizing tiny_vla). Output: results/sizing/."""
import time

import torch
from transformers import LlamaConfig, LlamaModel


def t(fn, n=30):
    for _ in range(3): fn()
    ts=[]
    for _ in range(n):
        a=time.perf_counter(); fn(); ts.append(time.perf_counter()-a)
    ts.sort(); return ts[len(ts)//2]*1000
for th in [1,2]:
    torch.set_num_threads(th)
    for D,L,I,H in [(256,8,1024,4),(384,8,1024,6),(512,8,1408,8)]:
        cfg=LlamaConfig(hidden_size=D,num_hidden_layers=L,num_attention_heads=H,num_key_value_heads=H,intermediate_size=I,vocab_size=512)
        m=LlamaModel._from_config(cfg,attn_implementation="sdpa").eval()
        res=[]
        for T in [280, 222, 150, 90, 60, 30]:
            x=torch.randn(1,T,D)
            with torch.inference_mode():
                res.append(f"T{T}:{t(lambda: m(inputs_embeds=x)):.1f}")
        print(f"th={th} D={D} L={L} I={I}", " ".join(res), flush=True)
