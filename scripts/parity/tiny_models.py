"""The tiny random GLM-V models every reference file is made with (saved under spec/fixtures/models/).

tiny_a: model_type glm4v, v5 spelling (`rope_parameters`), GQA 4 heads / 2 KV heads, head_dim 16,
        partial_rotary_factor 0.5 (rotary dim 8), mrope_section [1, 2, 1], theta 10000.
tiny_b: model_type glm46v, v4 spelling (`rope_scaling` + `rope_theta` + `partial_rotary_factor` in text_config),
        3 heads / 1 KV head, head_dim 16, partial 0.5, mrope_section [2, 1, 1], theta 500000.
Both: spatial_merge_size 2, patch 14, temporal patch 2, and the special-token ids of the tiny tokenizer
(SPECIAL_TOKENS below: GLM's special tokens at ids 352..380 of a 384-token vocabulary).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import Glm4vConfig, Glm4vForConditionalGeneration, Glm46VConfig, Glm46VForConditionalGeneration

from common import FIXTURES, randomize_, save_model

VOCAB = 384
SPECIAL_TOKENS = [
    "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>", "<|assistant|>",
    "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>",
    "<think>", "</think>", "<|begin_of_box|>", "<|end_of_box|>", "<|image|>", "<|video|>", "/nothink",
    "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<arg_key>", "</arg_key>",
    "<arg_value>", "</arg_value>",
]
FIRST_SPECIAL = 352
ID = {tok: FIRST_SPECIAL + i for i, tok in enumerate(SPECIAL_TOKENS)}

TOKEN_IDS = dict(
    image_token_id=ID["<|image|>"], video_token_id=ID["<|video|>"],
    image_start_token_id=ID["<|begin_of_image|>"], image_end_token_id=ID["<|end_of_image|>"],
    video_start_token_id=ID["<|begin_of_video|>"], video_end_token_id=ID["<|end_of_video|>"],
)
EOS = [ID["<|endoftext|>"], ID["<|user|>"], ID["<|observation|>"]]
PAD = ID["<|endoftext|>"]

TINY_A = dict(
    model_type="glm4v",
    text_config=dict(
        model_type="glm4v_text", vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-5,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5, mrope_section=[1, 2, 1]),
        pad_token_id=PAD, eos_token_id=EOS,
    ),
    vision_config=dict(
        model_type="glm4v_vision", depth=2, hidden_size=32, num_heads=2, patch_size=14, image_size=112,
        spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64, intermediate_size=80, rms_norm_eps=1e-5,
        in_channels=3, hidden_act="silu",
    ),
    tie_word_embeddings=False, eos_token_id=EOS, pad_token_id=PAD, **TOKEN_IDS,
)

TINY_B = dict(
    model_type="glm46v",
    text_config=dict(
        model_type="glm4v_text", vocab_size=VOCAB, hidden_size=48, intermediate_size=72, num_hidden_layers=3,
        num_attention_heads=3, num_key_value_heads=1, max_position_embeddings=4096, rms_norm_eps=1e-5,
        rope_scaling=dict(type="default", mrope_section=[2, 1, 1]), rope_theta=500000.0, partial_rotary_factor=0.5,
        pad_token_id=PAD, eos_token_id=EOS,
    ),
    vision_config=dict(
        model_type="glm4v_vision", depth=1, hidden_size=48, num_heads=3, patch_size=14, image_size=56,
        spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=48, intermediate_size=64, rms_norm_eps=1e-5,
        in_channels=3, hidden_act="silu",
    ),
    tie_word_embeddings=False, eos_token_id=EOS, pad_token_id=PAD, **TOKEN_IDS,
)

SPECS = {"tiny_a": (TINY_A, Glm4vConfig, Glm4vForConditionalGeneration, 1234),
         "tiny_b": (TINY_B, Glm46VConfig, Glm46VForConditionalGeneration, 5678)}


def model_dir(name: str) -> Path:
    return FIXTURES / "models" / name


def build(name: str) -> tuple[torch.nn.Module, Path]:
    """Builds the named tiny model with its fixed random weights, saves it in HF layout, returns it in eval mode."""
    cfg_dict, cfg_cls, model_cls, seed = SPECS[name]
    torch.manual_seed(seed)
    config = cfg_cls(**json.loads(json.dumps(cfg_dict)))
    model = model_cls(config).float().eval()
    randomize_(model, seed)
    out = model_dir(name)
    save_model(model, out)
    from tiny_tokenizer import save_tokenizer  # imports this module's SPECIAL_TOKENS: import here, not at the top
    save_tokenizer(out, cfg_dict["model_type"])
    # save_pretrained rewrites the config in v5 spelling: keep the v4 spelling of tiny_b as written above,
    # so the TypeScript parser is tested on both.
    if name == "tiny_b":
        saved = json.loads((out / "config.json").read_text())
        saved["text_config"] = {**saved["text_config"], **cfg_dict["text_config"]}
        saved["text_config"].pop("rope_parameters", None)
        (out / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
        reloaded = model_cls.from_pretrained(out).float().eval()
        for (k, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
            assert torch.equal(a, b), k
        assert reloaded.config.text_config.rope_parameters["rope_theta"] == 500000.0
        assert reloaded.config.text_config.rope_parameters["partial_rotary_factor"] == 0.5
    return model, out
