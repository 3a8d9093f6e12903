"""Training references: 5 steps of torch.optim.AdamW with clip_grad_norm_ and transformers' warmup-cosine schedule
on tiny_a, the same batch each step (spec/fixtures/model/tiny_a_batch.safetensors: two left-padded prompts with
images, labels on the answers). Writes spec/fixtures/train/adamw_tiny_a.safetensors:

  train:loss, train:grad_norm, train:lr   [5]  loss before each step, total grad norm before clipping, lr used
  step1:<name>                                   a few parameters after step 1 (one of each kind and group)
  param:<name>                                   every parameter after step 5
  sched:<name>                                   schedule tables (LambdaLR.get_last_lr over 16 steps)

eps is 1e-6, not torch's default 1e-8: outside the rotary dims the k_proj bias has an exactly-zero gradient
(softmax is shift-invariant), so both sides feed Adam float noise of ~1e-9 there, which eps 1e-8 would turn into
+-lr steps of random sign; with 1e-6 the comparison is about the optimizer, not about that noise.
Parameter groups as the Trainer: weight decay on every >= 2-D parameter, none on biases and norm weights.
The model is read from spec/fixtures/models/tiny_a (not rebuilt).
"""
from __future__ import annotations

import json

import torch
from safetensors.torch import load_file
from transformers import Glm4vForConditionalGeneration
from transformers.optimization import get_cosine_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup

from common import FIXTURES, write_reference
from tiny_models import ID, model_dir

OUT = FIXTURES / "train" / "adamw_tiny_a.safetensors"
CONFIG = dict(lr=5e-3, betas=[0.9, 0.95], eps=1e-6, weight_decay=0.1, max_grad_norm=1.0, warmup_steps=0,
              total_steps=8, steps=5)
STEP1_KEYS = [
    "lm_head.weight", "model.language_model.embed_tokens.weight", "model.language_model.layers.0.self_attn.q_proj.weight",
    "model.language_model.layers.0.self_attn.q_proj.bias", "model.language_model.layers.1.mlp.gate_up_proj.weight",
    "model.language_model.norm.weight", "model.visual.patch_embed.proj.weight", "model.visual.downsample.weight",
    "model.visual.merger.post_projection_norm.bias", "model.visual.embeddings.position_embedding.weight",
]


def schedule_table(make, steps=16):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = make(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return torch.tensor(lrs, dtype=torch.float64)


def main():
    torch.manual_seed(0)
    mdir = model_dir("tiny_a")
    model = Glm4vForConditionalGeneration.from_pretrained(mdir, dtype=torch.float32)
    model.train()
    ref = load_file(str(FIXTURES / "model" / "tiny_a_batch.safetensors"))
    ids, mask = ref["in:input_ids"], ref["in:attention_mask"]
    inputs = dict(input_ids=ids, attention_mask=mask, pixel_values=ref["in:pixel_values"],
                  image_grid_thw=ref["in:image_grid_thw"], mm_token_type_ids=(ids == ID["<|image|>"]).long() * mask,
                  labels=ref["in:labels"])
    c = CONFIG
    named = list(model.named_parameters())
    groups = [{"params": [p for _, p in named if p.ndim >= 2], "weight_decay": c["weight_decay"]},
              {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=c["lr"], betas=tuple(c["betas"]), eps=c["eps"], foreach=False)
    sched = get_cosine_schedule_with_warmup(opt, c["warmup_steps"], c["total_steps"])
    losses, norms, lrs, tensors = [], [], [], {}
    for step in range(c["steps"]):
        opt.zero_grad(set_to_none=True)
        out = model(**inputs)
        out.loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c["max_grad_norm"], foreach=False)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        losses.append(out.loss.item())
        norms.append(norm.item())
        if step == 0:
            params = dict(named)
            tensors.update({f"step1:{k}": params[k].detach().clone() for k in STEP1_KEYS})
    print("loss", losses, "\ngrad_norm", norms, "\nlr", lrs)
    tensors.update({"train:loss": torch.tensor(losses), "train:grad_norm": torch.tensor(norms),
                    "train:lr": torch.tensor(lrs)})
    tensors.update({f"param:{k}": p.detach() for k, p in named})
    tensors["sched:warmup_cosine"] = schedule_table(lambda o: get_cosine_schedule_with_warmup(o, 3, 12))
    tensors["sched:warmup_cosine_cycles"] = schedule_table(lambda o: get_cosine_schedule_with_warmup(o, 2, 10, num_cycles=1.5))
    tensors["sched:min_lr"] = schedule_table(
        lambda o: get_cosine_with_min_lr_schedule_with_warmup(o, 4, 14, min_lr_rate=0.1))
    write_reference(OUT, tensors, mdir, model.config.model_type,
                    "5 AdamW steps with clipping and a cosine schedule on tiny_a_batch",
                    {"train_config": json.dumps(c), "inputs": "../model/tiny_a_batch.safetensors",
                     "schedules": json.dumps({"warmup_cosine": [3, 12, 0.5, 0], "warmup_cosine_cycles": [2, 10, 1.5, 0],
                                              "min_lr": [4, 14, 0.5, 0.1]})})
