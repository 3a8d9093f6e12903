"""MoE training reference: 5 steps of torch.optim.AdamW with clip_grad_norm_ and a cosine schedule on moe_a (the tiny
glm4v_moe model of tiny_moe.py), as cases_train.py does for tiny_a. Writes spec/fixtures/moe/train/adamw_moe_a.safetensors:

  in:input_ids, in:attention_mask, in:labels    one short text-only row (few tokens, so that some experts go unchosen)
  train:loss, train:grad_norm, train:lr   [5]  loss before each step, total grad norm before clipping, lr used
  route:<layer>                           [5, E] 1 where any token chose expert e of that MoE layer in that step
  param:<name>                                 every parameter after step 5, experts per expert (the published layout)

What it pins down: transformers holds each layer's experts as two fused parameters (gate_up_proj, down_proj), so an
expert that no token chose gets a zero gradient slice, not None: torch's AdamW still decays it and advances its
moments (a per-expert nn.Linear with grad None would be skipped). The script asserts that some expert chosen in an
earlier step goes unchosen in a later one, where the two behaviours differ by far more than the tolerance, and (with
cases_moe.RouteCheck) that every choice in every step is MARGIN clear of a tie.
Parameter groups as the Trainer (decay on >= 2-D parameters); eps 1e-6 for cases_train.py's reason.
"""
from __future__ import annotations

import json

import torch
from transformers import Glm4vMoeForConditionalGeneration
from transformers.optimization import get_cosine_schedule_with_warmup

from cases_moe import MARGIN, RouteCheck
from common import FIXTURES, write_reference
from tiny_models import ID
from tiny_moe import model_dir

OUT = FIXTURES / "moe" / "train" / "adamw_moe_a.safetensors"
CONFIG = dict(lr=5e-3, betas=[0.9, 0.95], eps=1e-6, weight_decay=0.1, max_grad_norm=1.0, warmup_steps=0,
              total_steps=8, steps=5)
# "[gMASK]<sop>" then four plain tokens; labels on the last three
IDS = [ID["[gMASK]"], ID["<sop>"], 40, 77, 123, 9]


def per_expert(name: str, p: torch.Tensor) -> dict[str, torch.Tensor]:
    """A fused expert parameter cut into the per-expert keys of the published layout; others as they are."""
    if name.endswith("mlp.experts.gate_up_proj"):
        base, half = name.rsplit(".", 1)[0], p.shape[1] // 2
        return {**{f"{base}.{e}.gate_proj.weight": p[e, :half] for e in range(p.shape[0])},
                **{f"{base}.{e}.up_proj.weight": p[e, half:] for e in range(p.shape[0])}}
    if name.endswith("mlp.experts.down_proj"):
        base = name.rsplit(".", 1)[0]
        return {f"{base}.{e}.down_proj.weight": p[e] for e in range(p.shape[0])}
    return {name: p}


def main():
    torch.manual_seed(0)
    mdir = model_dir("moe_a")
    model = Glm4vMoeForConditionalGeneration.from_pretrained(mdir, dtype=torch.float32)
    model.train()
    ids = torch.tensor([IDS])
    mask = torch.ones_like(ids)
    labels = torch.full_like(ids, -100)
    labels[0, -3:] = ids[0, -3:]
    routers = {n.rsplit(".mlp.gate", 1)[0]: m for n, m in model.named_modules() if type(m).__name__ == "Glm4vMoeTextTopkRouter"}
    chosen: dict[str, torch.Tensor] = {}
    for layer, r in routers.items():
        r.register_forward_hook(lambda m, _i, out, layer=layer: chosen.__setitem__(layer, out[2].flatten()))
    margins = RouteCheck(model, mask)  # asserts that every choice is MARGIN clear of a tie, in every step
    c = CONFIG
    named = list(model.named_parameters())
    groups = [{"params": [p for _, p in named if p.ndim >= 2], "weight_decay": c["weight_decay"]},
              {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=c["lr"], betas=tuple(c["betas"]), eps=c["eps"], foreach=False)
    sched = get_cosine_schedule_with_warmup(opt, c["warmup_steps"], c["total_steps"])
    losses, norms, lrs = [], [], []
    route = {layer: torch.zeros(c["steps"], r.num_experts) for layer, r in routers.items()}
    for step in range(c["steps"]):
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        for layer, idx in chosen.items():
            route[layer][step, idx.unique()] = 1
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c["max_grad_norm"], foreach=False)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        losses.append(out.loss.item())
        norms.append(norm.item())
    # an expert chosen in an earlier step and not in a later one: there a skipped step and torch's differ by ~lr
    events = [(layer, s, e) for layer, r in route.items() for s in range(1, c["steps"]) for e in range(r.shape[1])
              if r[s, e] == 0 and r[:s, e].any()]
    never = [(layer, e) for layer, r in route.items() for e in range(r.shape[1]) if not r[:, e].any()]
    print(f"smallest choice margin {margins.min_margin:.3e} (>= {MARGIN})")
    print("loss", losses, "\ngrad_norm", norms, "\nlr", lrs, "\nchosen-then-unchosen", events, "\nnever chosen", never)
    assert events, "no expert goes unchosen after being chosen: the fixture would not tell skipping from zero gradients"
    tensors = {"in:input_ids": ids, "in:attention_mask": mask, "in:labels": labels,
               "train:loss": torch.tensor(losses), "train:grad_norm": torch.tensor(norms), "train:lr": torch.tensor(lrs)}
    tensors.update({f"route:{layer}": r for layer, r in route.items()})
    for k, p in named:
        tensors.update({f"param:{kk}": v.detach().clone() for kk, v in per_expert(k, p).items()})
    write_reference(OUT, tensors, mdir, model.config.model_type,
                    "5 AdamW steps with clipping and a cosine schedule on moe_a (fused experts: unchosen ones decay)",
                    {"train_config": json.dumps(c), "min_choice_margin": f"{margins.min_margin:.3e}", "chosen_then_unchosen": json.dumps(events[:20]),
                     "never_chosen": json.dumps(never)})


if __name__ == "__main__":
    main()
