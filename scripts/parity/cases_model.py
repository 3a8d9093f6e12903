"""Full-model references: images in, rope positions, every visual and decoder stage, logits, loss and the gradient
of every parameter; and greedy generation (`gen:sequences`). Files go to spec/fixtures/model/.

Input ids are built by hand from the tiny tokenizer's special-token ids (tiny_models.ID), so these cases do not
depend on the tokenizer; pixel values are random (fixed seeds) in processor row layout.
"""
from __future__ import annotations

import torch

from common import FIXTURES, Capture, write_reference
from tiny_models import ID, build

OUT = FIXTURES / "model"
IMG, BOI, EOI = ID["<|image|>"], ID["<|begin_of_image|>"], ID["<|end_of_image|>"]
PAD = ID["<|endoftext|>"]
PROMPT_HEAD = [ID["[gMASK]"], ID["<sop>"], ID["<|user|>"], 10]


def image_span(grid, merge=2):
    t, h, w = grid
    return [BOI] + [IMG] * (t * h * w // merge**2) + [EOI]


def text(g, n):
    return torch.randint(0, 300, (n,), generator=g).tolist()


def left_pad(rows):
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, L - len(r):] = torch.tensor(r)
        mask[i, L - len(r):] = 1
    return ids, mask


def stage_paths(model):
    cfg = model.config
    vis = ["model.visual.patch_embed", "model.visual.post_conv_layernorm", "model.visual.embeddings"]
    vis += [f"model.visual.blocks.{i}" for i in range(cfg.vision_config.depth)]
    vis += ["model.visual.post_layernorm", "model.visual.downsample", "model.visual.merger"]
    txt = [f"model.language_model.layers.{i}" for i in range(cfg.text_config.num_hidden_layers)]
    return vis + txt + ["model.language_model.norm"]


def forward_case(name, model_name, rows, grids, answer_lens, seed, description):
    """rows: token lists (prompt incl. images + answer); the last answer_lens[i] tokens of row i are labelled."""
    model, mdir = build(model_name)
    g = torch.Generator().manual_seed(seed)
    ids, mask = left_pad(rows)
    labels = torch.full_like(ids, -100)
    for i, n in enumerate(answer_lens):
        labels[i, ids.shape[1] - n:] = ids[i, ids.shape[1] - n:]
    grid_thw = torch.tensor(grids, dtype=torch.long)
    vc = model.config.vision_config
    n_patches = int(grid_thw.prod(-1).sum())
    pixel_values = torch.randn(n_patches, vc.in_channels * vc.temporal_patch_size * vc.patch_size**2, generator=g)
    mm_types = (ids == IMG).long() * mask
    position_ids, deltas = model.model.get_rope_index(ids, mm_token_type_ids=mm_types, image_grid_thw=grid_thw,
                                                      attention_mask=mask)
    cap = Capture(model, stage_paths(model))
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=mask, pixel_values=pixel_values, image_grid_thw=grid_thw,
                mm_token_type_ids=mm_types, labels=labels)
    cap.remove()
    out.loss.backward()
    tensors = {
        "in:input_ids": ids, "in:attention_mask": mask, "in:pixel_values": pixel_values,
        "in:image_grid_thw": grid_thw, "in:labels": labels,
        "rope:position_ids": position_ids, "rope:deltas": deltas,
        **cap.outputs, "logits": out.logits, "loss": out.loss.detach(),
    }
    for pname, p in model.named_parameters():
        tensors[f"grad:{pname}"] = p.grad if p.grad is not None else torch.zeros_like(p)
    write_reference(OUT / f"{name}.safetensors", tensors, mdir, model.config.model_type, description)


@torch.no_grad()
def generate_case(name, model_name, rows, grids, seed, description, new_tokens=32):
    model, mdir = build(model_name)
    g = torch.Generator().manual_seed(seed)
    ids, mask = left_pad(rows)
    kwargs = {}
    if grids:
        grid_thw = torch.tensor(grids, dtype=torch.long)
        vc = model.config.vision_config
        n = int(grid_thw.prod(-1).sum())
        kwargs = dict(pixel_values=torch.randn(n, vc.in_channels * vc.temporal_patch_size * vc.patch_size**2, generator=g),
                      image_grid_thw=grid_thw, mm_token_type_ids=(ids == IMG).long() * mask)
    seq = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                         eos_token_id=model.config.eos_token_id, pad_token_id=PAD, **kwargs)
    tensors = {"in:input_ids": ids, "in:attention_mask": mask, "gen:sequences": seq}
    if grids:
        tensors["in:pixel_values"] = kwargs["pixel_values"]
        tensors["in:image_grid_thw"] = kwargs["image_grid_thw"]
    write_reference(OUT / f"{name}.safetensors", tensors, mdir, model.config.model_type, description,
                    {"max_new_tokens": str(new_tokens)})


def main():
    g = torch.Generator().manual_seed(7)
    one = PROMPT_HEAD + image_span([1, 6, 8]) + text(g, 5) + [ID["<|assistant|>"]] + text(g, 6)
    forward_case("tiny_a_image", "tiny_a", [one], [[1, 6, 8]], [6], 11, "one image [1,6,8], labels on the answer")
    two = PROMPT_HEAD + image_span([1, 4, 4]) + text(g, 3) + image_span([1, 6, 10]) + text(g, 4) + \
        [ID["<|assistant|>"]] + text(g, 5)
    forward_case("tiny_a_two_images", "tiny_a", [two], [[1, 4, 4], [1, 6, 10]], [5], 12,
                 "two images of different sizes in one prompt")
    r1 = PROMPT_HEAD + image_span([1, 4, 6]) + text(g, 8) + [ID["<|assistant|>"]] + text(g, 4)
    r2 = PROMPT_HEAD + image_span([1, 8, 4]) + text(g, 2) + [ID["<|assistant|>"]] + text(g, 3)
    forward_case("tiny_a_batch", "tiny_a", [r1, r2], [[1, 4, 6], [1, 8, 4]], [4, 3], 13,
                 "left-padded batch of 2 prompts with different images")
    b1 = PROMPT_HEAD + image_span([1, 4, 8]) + text(g, 6) + [ID["<|assistant|>"]] + text(g, 4)
    forward_case("tiny_b_image", "tiny_b", [b1], [[1, 4, 8]], [4], 14, "tiny_b (glm46v), one image [1,4,8]")

    gt = PROMPT_HEAD + text(g, 9) + [ID["<|assistant|>"]]
    generate_case("gen_text", "tiny_a", [gt], [], 21, "greedy, text only")
    gi = PROMPT_HEAD + image_span([1, 6, 8]) + text(g, 4) + [ID["<|assistant|>"]]
    generate_case("gen_image", "tiny_a", [gi], [[1, 6, 8]], 22, "greedy, one image")
    g1 = PROMPT_HEAD + image_span([1, 4, 6]) + text(g, 7) + [ID["<|assistant|>"]]
    g2 = PROMPT_HEAD + image_span([1, 6, 4]) + text(g, 2) + [ID["<|assistant|>"]]
    generate_case("gen_batch", "tiny_a", [g1, g2], [[1, 4, 6], [1, 6, 4]], 23, "greedy, left-padded batch of 2 with images")
    gb = PROMPT_HEAD + image_span([1, 4, 8]) + text(g, 5) + [ID["<|assistant|>"]]
    generate_case("gen_image_tiny_b", "tiny_b", [gb], [[1, 4, 8]], 24, "greedy, one image, tiny_b")
