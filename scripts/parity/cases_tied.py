"""Tied word embeddings (`tie_word_embeddings: true`): a tiny glm46v model whose lm_head is embed_tokens, saved by
transformers (so without `lm_head.weight`), and its references. Files go to spec/fixtures/tied/:

  model/                    the tied model (tiny_a's shapes, model_type glm46v, the tiny tokenizer)
  forward_batch.safetensors left-padded batch of 2 with images: rope, every stage, logits, loss and every gradient;
                            the shared matrix's gradient once, under the name named_parameters() gives it
                            (model.language_model.embed_tokens.weight): the sum of its two uses
  generate.safetensors      greedy generation with an image (exact tokens)
  train.safetensors         3 torch.optim.AdamW steps with clip_grad_norm_ on forward_batch's inputs:
                            train:loss, train:grad_norm [3] and param:<name> after the last step
  config_cases.json         where transformers reads the flag: for glm4v and glm46v, the flag absent / false / true at
                            the top level and in text_config, the config's tie_word_embeddings and whether the model
                            ties (from transformers itself)

The embedding is drawn at fan-in scale (N(0,1)/sqrt(hidden)), not N(0,1) as the untied tiny models': as lm_head it
then gives logits of order one.
"""
from __future__ import annotations

import itertools
import json

import torch
from safetensors import safe_open
from transformers import (Glm4vConfig, Glm4vForConditionalGeneration, Glm46VConfig, Glm46VForConditionalGeneration)

from cases_model import PROMPT_HEAD, image_span, left_pad, stage_paths, text
from common import FIXTURES, Capture, randomize_, save_model, write_json, write_reference
from tiny_models import ID, PAD, TINY_A, TINY_B

OUT = FIXTURES / "tied"
MODEL = OUT / "model"
IMG = ID["<|image|>"]
TIED = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
TRAIN = dict(lr=5e-3, betas=[0.9, 0.95], eps=1e-6, weight_decay=0.1, max_grad_norm=1.0, steps=3)
TRAIN_KEYS = ["model.language_model.embed_tokens.weight", "model.language_model.norm.weight",
              "model.language_model.layers.1.self_attn.q_proj.weight", "model.visual.merger.proj.weight"]


def tied_config() -> dict:
    cfg = json.loads(json.dumps(TINY_A))
    cfg["model_type"] = "glm46v"
    cfg["tie_word_embeddings"] = True
    return cfg


def is_tied(model) -> bool:
    return model.lm_head.weight is model.model.language_model.embed_tokens.weight


def build() -> torch.nn.Module:
    seed = 4321
    torch.manual_seed(seed)
    model = Glm46VForConditionalGeneration(Glm46VConfig(**tied_config())).float().eval()
    assert is_tied(model)
    randomize_(model, seed)
    emb = model.model.language_model.embed_tokens.weight
    with torch.no_grad():
        emb.mul_(emb.shape[1] ** -0.5)
    save_model(model, MODEL)
    from tiny_tokenizer import save_tokenizer
    save_tokenizer(MODEL, "glm46v")
    with safe_open(str(MODEL / "model.safetensors"), "pt") as f:
        assert "lm_head.weight" not in f.keys(), "save_pretrained wrote lm_head.weight for a tied model"
    saved = json.loads((MODEL / "config.json").read_text())
    assert saved["tie_word_embeddings"] is True
    reloaded, info = Glm46VForConditionalGeneration.from_pretrained(MODEL, output_loading_info=True)
    assert not any(info.values()), info
    assert is_tied(reloaded)
    for (k, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), k
    return model


def batch_inputs(model, seed=31):
    g = torch.Generator().manual_seed(seed)
    r1 = PROMPT_HEAD + image_span([1, 4, 6]) + text(g, 7) + [ID["<|assistant|>"]] + text(g, 5)
    r2 = PROMPT_HEAD + image_span([1, 6, 4]) + text(g, 3) + [ID["<|assistant|>"]] + text(g, 4)
    ids, mask = left_pad([r1, r2])
    labels = torch.full_like(ids, -100)
    for i, n in enumerate([5, 4]):
        labels[i, ids.shape[1] - n:] = ids[i, ids.shape[1] - n:]
    grid = torch.tensor([[1, 4, 6], [1, 6, 4]])
    vc = model.config.vision_config
    pv = torch.randn(int(grid.prod(-1).sum()), vc.in_channels * vc.temporal_patch_size * vc.patch_size**2, generator=g)
    return dict(input_ids=ids, attention_mask=mask, pixel_values=pv, image_grid_thw=grid,
                mm_token_type_ids=(ids == IMG).long() * mask, labels=labels)


def meta(model) -> dict[str, str]:
    return {"tied_weights": json.dumps(TIED), "num_parameters": str(model.num_parameters())}


def forward_case(model):
    x = batch_inputs(model)
    position_ids, deltas = model.model.get_rope_index(x["input_ids"], mm_token_type_ids=x["mm_token_type_ids"],
                                                      image_grid_thw=x["image_grid_thw"],
                                                      attention_mask=x["attention_mask"])
    cap = Capture(model, stage_paths(model))
    model.zero_grad()
    out = model(**x)
    cap.remove()
    out.loss.backward()
    tensors = {
        "in:input_ids": x["input_ids"], "in:attention_mask": x["attention_mask"], "in:pixel_values": x["pixel_values"],
        "in:image_grid_thw": x["image_grid_thw"], "in:labels": x["labels"],
        "rope:position_ids": position_ids, "rope:deltas": deltas,
        **cap.outputs, "logits": out.logits, "loss": out.loss.detach(),
    }
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names and TIED["lm_head.weight"] in names
    for name, p in model.named_parameters():
        tensors[f"grad:{name}"] = p.grad
    model.zero_grad(set_to_none=True)
    write_reference(OUT / "forward_batch.safetensors", tensors, MODEL, "glm46v",
                    "tied embeddings: left-padded batch of 2 with images, every stage, logits, loss, every gradient",
                    meta(model))


@torch.no_grad()
def generate_case(model, new_tokens=24):
    g = torch.Generator().manual_seed(32)
    row = PROMPT_HEAD + image_span([1, 6, 8]) + text(g, 5) + [ID["<|assistant|>"]]
    ids, mask = left_pad([row])
    vc = model.config.vision_config
    grid = torch.tensor([[1, 6, 8]])
    pv = torch.randn(48, vc.in_channels * vc.temporal_patch_size * vc.patch_size**2, generator=g)
    seq = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pv, image_grid_thw=grid,
                         mm_token_type_ids=(ids == IMG).long() * mask, max_new_tokens=new_tokens, do_sample=False,
                         eos_token_id=model.config.eos_token_id, pad_token_id=PAD)
    write_reference(OUT / "generate.safetensors",
                    {"in:input_ids": ids, "in:attention_mask": mask, "in:pixel_values": pv, "in:image_grid_thw": grid,
                     "gen:sequences": seq},
                    MODEL, "glm46v", "tied embeddings: greedy generation with one image [1,6,8]",
                    {**meta(model), "max_new_tokens": str(new_tokens)})


def train_case():
    model = Glm46VForConditionalGeneration.from_pretrained(MODEL, dtype=torch.float32)
    assert is_tied(model)
    model.train()
    x = batch_inputs(model)
    c = TRAIN
    named = list(model.named_parameters())
    groups = [{"params": [p for _, p in named if p.ndim >= 2], "weight_decay": c["weight_decay"]},
              {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=c["lr"], betas=tuple(c["betas"]), eps=c["eps"], foreach=False)
    losses, norms = [], []
    for _ in range(c["steps"]):
        opt.zero_grad(set_to_none=True)
        out = model(**x)
        out.loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), c["max_grad_norm"], foreach=False).item())
        opt.step()
        losses.append(out.loss.item())
    assert is_tied(model)
    params = dict(named)
    tensors = {"train:loss": torch.tensor(losses), "train:grad_norm": torch.tensor(norms),
               **{f"param:{k}": params[k].detach() for k in TRAIN_KEYS}}
    print("loss", losses, "grad_norm", norms)
    write_reference(OUT / "train.safetensors", tensors, MODEL, "glm46v",
                    f"tied embeddings: {c['steps']} AdamW steps (constant lr) with clipping on forward_batch's inputs",
                    {**meta(model), "train_config": json.dumps(c), "inputs": "forward_batch.safetensors"})


def config_cases():
    """transformers' reading of the flag in each place, for each model type (tiny configs, models built to check)."""
    cases = []
    for (mt, base, ccls, mcls), top, txt in itertools.product(
            [("glm4v", TINY_A, Glm4vConfig, Glm4vForConditionalGeneration),
             ("glm46v", TINY_B, Glm46VConfig, Glm46VForConditionalGeneration)],
            [None, False, True], [None, False, True]):
        d = json.loads(json.dumps(base))
        d.pop("tie_word_embeddings")
        if top is not None:
            d["tie_word_embeddings"] = top
        if txt is not None:
            d["text_config"]["tie_word_embeddings"] = txt
        config = ccls.from_dict(json.loads(json.dumps(d)))
        tied = is_tied(mcls(config))
        assert tied == config.tie_word_embeddings
        cases.append({"model_type": mt, "top": top, "text_config": txt, "tied": tied})
    write_json(OUT / "config_cases.json", {"transformers_version": __import__("transformers").__version__,
                                           "cases": cases})
    print(f"wrote {OUT.relative_to(FIXTURES.parent.parent)}/config_cases.json ({len(cases)} cases)")


def main():
    model = build()
    forward_case(model)
    generate_case(model)
    train_case()
    config_cases()
