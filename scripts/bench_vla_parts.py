# ruff: noqa  (one-off measurement script kept verbatim as run)
"""Latency of candidate Llama decoders and ViT encoders (sizing tiny_vla). Output: results/sizing/."""
import time

import torch
from transformers import LlamaConfig, LlamaModel, ViTConfig, ViTModel

torch.set_num_threads(2)
def t(fn, n=20):
    for _ in range(3): fn()
    ts=[]
    for _ in range(n):
        a=time.perf_counter(); fn(); ts.append(time.perf_counter()-a)
    ts.sort(); return ts[len(ts)//2]*1000
for D,L,I in [(256,8,1024),(320,8,1280),(384,8,1536),(256,12,1024)]:
    cfg=LlamaConfig(hidden_size=D,num_hidden_layers=L,num_attention_heads=D//64,num_key_value_heads=D//64,intermediate_size=I,vocab_size=512)
    m=LlamaModel._from_config(cfg,attn_implementation="sdpa").eval()
    for T in [150, 60]:
        x=torch.randn(1,T,D)
        with torch.inference_mode():
            ms=t(lambda: m(inputs_embeds=x))
        print(f"llama D={D} L={L} T={T}: {ms:.1f} ms  params={sum(p.numel() for p in m.parameters())/1e6:.1f}M")
for D,L in [(192,4),(192,6),(256,4)]:
    vc=ViTConfig(hidden_size=D,num_hidden_layers=L,num_attention_heads=D//64,intermediate_size=4*D,image_size=128,patch_size=16)
    v=ViTModel._from_config(vc,attn_implementation="sdpa", add_pooling_layer=False).eval()
    x=torch.randn(2,3,128,128)
    with torch.inference_mode():
        ms=t(lambda: v(pixel_values=x))
    print(f"vit D={D} L={L}: {ms:.1f} ms params={sum(p.numel() for p in v.parameters())/1e6:.1f}M")
