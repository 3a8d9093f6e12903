"""The tiny random Mixture-of-Experts GLM-V models (GLM-4.5V / GLM-4.6V text backbone), saved under spec/fixtures/models/.

moe_a: model_type glm4v_moe (Glm4vMoeForConditionalGeneration, what GLM-4.5V / GLM-4.6V checkpoints are). 3 text
       layers: layer 0 dense (first_k_dense_replace 1), layers 1-2 MoE with 8 routed experts in 4 groups, top-2 of
       the best 2 groups, 2 shared experts, norm_topk_prob, routed_scaling_factor 2.5. GQA 4 heads / 2 KV heads,
       head_dim 24 (set apart from hidden/heads = 12), partial_rotary_factor left to the glm4v_moe default 0.5
       (rotary dim 12), mrope_section [2, 2, 2], q/k/v biases (attention_bias true).
       Saved as transformers' save_pretrained writes glm4v_moe: one tensor per expert and projection
       (`mlp.experts.{e}.{gate,up,down}_proj.weight`), the layout of the published checkpoints.
moe_b: model_type glm46v with a glm4v_moe_text text_config (Glm46VForConditionalGeneration builds its text model with
       AutoModel, so this is a GLM-4.6V model with the MoE backbone). 2 text layers (layer 0 dense, layer 1 MoE),
       6 experts in 2 groups, top-3 of the best group, 1 shared expert, no norm_topk_prob, routed_scaling_factor 1,
       no attention biases, 3 heads / 1 KV head. transformers 5.24 saves glm46v with the experts fused
       (`mlp.experts.gate_up_proj` [E, 2I, H], `mlp.experts.down_proj` [E, H, I]) and loads only that layout.

Every parameter is random (common.randomize_, with fan-in scaling per expert for the fused expert tensors), and so
is the e_score_correction_bias buffer (0.3 N(0,1), so it changes which experts are chosen). The router weights get
fan-in scaling times ROUTER_SCALE so that the sigmoid scores spread over (0, 1): cases_moe.py checks that every
expert choice has a margin of at least MARGIN on the scores it is made from.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import Glm4vMoeConfig, Glm4vMoeForConditionalGeneration, Glm46VConfig, Glm46VForConditionalGeneration

from common import FIXTURES, randomize_, save_model
from tiny_models import EOS, PAD, TOKEN_IDS, VOCAB

ROUTER_SCALE = 1.5

VISION = dict(model_type="glm4v_vision", depth=2, hidden_size=32, num_heads=2, patch_size=14, image_size=112,
              spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=48, intermediate_size=64,
              rms_norm_eps=1e-5, in_channels=3, hidden_act="silu")

MOE_A = dict(
    model_type="glm4v_moe",
    text_config=dict(
        model_type="glm4v_moe_text", vocab_size=VOCAB, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=24, max_position_embeddings=4096, rms_norm_eps=1e-5,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[2, 2, 2]),
        attention_bias=True, moe_intermediate_size=16, n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=2,
        n_group=4, topk_group=2, first_k_dense_replace=1, norm_topk_prob=True, routed_scaling_factor=2.5,
        pad_token_id=PAD, eos_token_id=EOS,
    ),
    vision_config={**VISION, "model_type": "glm4v_moe_vision"},
    tie_word_embeddings=False, eos_token_id=EOS, pad_token_id=PAD, **TOKEN_IDS,
)

MOE_B = dict(
    model_type="glm46v",
    text_config=dict(
        model_type="glm4v_moe_text", vocab_size=VOCAB, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=3, num_key_value_heads=1, head_dim=16, max_position_embeddings=4096, rms_norm_eps=1e-5,
        rope_parameters=dict(rope_type="default", rope_theta=500000.0, partial_rotary_factor=0.5,
                             mrope_section=[2, 1, 1]),
        attention_bias=False, moe_intermediate_size=24, n_routed_experts=6, num_experts_per_tok=3, n_shared_experts=1,
        n_group=2, topk_group=1, first_k_dense_replace=1, norm_topk_prob=False, routed_scaling_factor=1.0,
        pad_token_id=PAD, eos_token_id=EOS,
    ),
    vision_config={**VISION, "depth": 1, "image_size": 56},
    tie_word_embeddings=False, eos_token_id=EOS, pad_token_id=PAD, **TOKEN_IDS,
)

SPECS = {"moe_a": (MOE_A, Glm4vMoeConfig, Glm4vMoeForConditionalGeneration, 4321),
         "moe_b": (MOE_B, Glm46VConfig, Glm46VForConditionalGeneration, 8765)}


def model_dir(name: str) -> Path:
    return FIXTURES / "models" / name


@torch.no_grad()
def randomize_moe_(model: torch.nn.Module, seed: int) -> None:
    """common.randomize_, then fan-in scaling per expert for the fused expert tensors, a spread-out router and a
    random e_score_correction_bias (a buffer, so randomize_ does not see it)."""
    randomize_(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    for name, p in model.named_parameters():
        if name.endswith("mlp.experts.gate_up_proj") or name.endswith("mlp.experts.down_proj"):
            p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)  # [E, out, in]: fan-in is the last dim
        elif name.endswith("mlp.gate.weight"):
            p.copy_(ROUTER_SCALE * torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
    for name, b in model.named_buffers():
        if name.endswith("e_score_correction_bias"):
            b.copy_(0.3 * torch.randn(b.shape, generator=g))


def build(name: str) -> tuple[torch.nn.Module, Path]:
    """Builds the named tiny MoE model with its fixed random weights, saves it in HF layout, returns it in eval mode."""
    cfg_dict, cfg_cls, model_cls, seed = SPECS[name]
    torch.manual_seed(seed)
    config = cfg_cls(**json.loads(json.dumps(cfg_dict)))
    model = model_cls(config).float().eval()
    randomize_moe_(model, seed)
    out = model_dir(name)
    save_model(model, out)
    from tiny_tokenizer import save_tokenizer
    save_tokenizer(out, "glm46v" if cfg_dict["model_type"] == "glm46v" else "glm4v")
    from safetensors import safe_open
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    split = any(".mlp.experts.0.gate_proj.weight" in k for k in keys)
    fused = any(k.endswith(".mlp.experts.gate_up_proj") for k in keys)
    assert (split, fused) == ((True, False) if name == "moe_a" else (False, True)), (name, split, fused)
    reloaded = model_cls.from_pretrained(out, dtype=torch.float32).eval()
    for (k, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), k
    return model, out
