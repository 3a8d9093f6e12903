"""Mixture-of-Experts references (GLM-4.5V / GLM-4.6V text backbone) on the tiny models of tiny_moe.py; files go to
spec/fixtures/moe/. Same contract as cases_model.py: `in:*`, `rope:*`, `out:<module path>`, `logits`, `loss`,
`grad:<param>`, `gen:sequences`.

Forward cases (text only, one image, two images, a left-padded batch with images, a video, moe_b with an image) hold
every visual and decoder stage, the logits, the loss and the gradient of every parameter. Single-row cases also
hold each MoE layer's pieces: `self_attn`, `mlp.gate` (the router logits [tokens, experts]), `mlp.experts` (the
weighted sum of the routed experts), `mlp.shared_experts` and `mlp`. Greedy cases generate 32 tokens.

Gradient names: the published checkpoint layout, one tensor per expert and projection
(`...mlp.experts.{e}.gate_proj.weight`, `up_proj`, `down_proj`), cut from transformers' fused parameters
(`experts.gate_up_proj` [E, 2I, H]: rows :I are gate, I: are up; `experts.down_proj` [E, H, I]). An expert that no
real (non-padding) token chooses has a zero gradient in transformers and none at all in a per-expert model; its
keys are left out of the file (and the file's metadata lists them), as are parameters with no gradient at all (the
vision tower in the text-only case).

Ties: every router call (prefill and each generated token) is hooked, and for every real token the script asserts
that the choice is MARGIN clear of a flip: the topk_group-th best group score beats the next group by at least
MARGIN, and the k-th chosen expert's score (with the correction bias) beats the best expert left out of the chosen
groups by at least MARGIN. Our float32 scores differ from transformers' by ~1e-7, far below MARGIN.
"""
from __future__ import annotations

import torch

from cases_model import PROMPT_HEAD, image_span, left_pad, text
from common import FIXTURES, Capture, write_reference
from tiny_models import ID, PAD
from tiny_moe import build

OUT = FIXTURES / "moe"
MARGIN = 1e-4
IMG = ID["<|image|>"]
BOV, EOV = ID["<|begin_of_video|>"], ID["<|end_of_video|>"]


class RouteCheck:
    """Hooks every router; records, per layer, the experts real tokens chose, and the smallest choice margin."""

    def __init__(self, model, row_mask: torch.Tensor):
        self.row_mask = row_mask.reshape(-1).bool()  # prefill rows; later calls (one token per row) are all real
        self.chosen: dict[str, set[int]] = {}
        self.min_margin = float("inf")
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in model.named_modules()
                        if type(m).__name__ == "Glm4vMoeTextTopkRouter"]
        assert self.handles, "no router found"

    def _hook(self, name):
        def hook(gate, _inp, out):
            logits, _, idx = out
            real = self.row_mask if logits.shape[0] == self.row_mask.numel() else torch.ones(logits.shape[0], dtype=torch.bool)
            sfc = logits.sigmoid() + gate.e_score_correction_bias
            G, k, tg = gate.num_group, gate.top_k, gate.topk_group
            groups = sfc.view(-1, G, sfc.shape[1] // G).topk(2, dim=-1)[0].sum(-1)  # [N, G]
            for r in torch.nonzero(real).flatten().tolist():
                gs = groups[r].sort(descending=True)[0]
                m = (gs[tg - 1] - gs[tg]).item() if tg < G else float("inf")
                keep = groups[r].topk(tg)[1]
                allowed = sfc[r].view(G, -1)[keep].flatten().sort(descending=True)[0]
                if k < allowed.numel():
                    m = min(m, (allowed[k - 1] - allowed[k]).item())
                self.min_margin = min(self.min_margin, m)
                assert m >= MARGIN, f"{name}: token {r} choice margin {m:.3e} < {MARGIN}"
                self.chosen.setdefault(name.rsplit(".mlp.gate", 1)[0], set()).update(idx[r].tolist())
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def stage_paths(model, per_layer: bool) -> list[str]:
    cfg = model.config
    vis = ["model.visual.patch_embed", "model.visual.post_conv_layernorm", "model.visual.embeddings"]
    vis += [f"model.visual.blocks.{i}" for i in range(cfg.vision_config.depth)]
    vis += ["model.visual.post_layernorm", "model.visual.downsample", "model.visual.merger"]
    tc = cfg.text_config
    txt = ["model.language_model.embed_tokens"]
    for i in range(tc.num_hidden_layers):
        p = f"model.language_model.layers.{i}"
        txt.append(p)
        if per_layer:
            txt += [f"{p}.self_attn", f"{p}.mlp"]
            if i >= tc.first_k_dense_replace:
                txt += [f"{p}.mlp.gate", f"{p}.mlp.experts", f"{p}.mlp.shared_experts"]
    return vis + txt + ["model.language_model.norm"]


def expert_grads(model, chosen: dict[str, set[int]]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """grad:<key> in the per-expert layout for the experts real tokens chose; the keys left out."""
    grads, left_out = {}, []
    for name, p in model.named_parameters():
        if p.grad is None:  # not on the loss's path at all (the vision tower of a text-only case)
            left_out.append(name)
            continue
        g = p.grad
        if name.endswith(".mlp.experts.gate_up_proj") or name.endswith(".mlp.experts.down_proj"):
            base, kind = name.rsplit(".", 1)
            layer = base.rsplit(".mlp.experts", 1)[0]
            I = model.config.text_config.moe_intermediate_size
            for e in range(g.shape[0]):
                parts = {"gate_proj": g[e, :I], "up_proj": g[e, I:]} if kind == "gate_up_proj" else {"down_proj": g[e]}
                for proj, t in parts.items():
                    key = f"{base}.{e}.{proj}.weight"
                    if e in chosen[layer]:  # zero when only tokens that do not reach the loss chose it
                        grads[f"grad:{key}"] = t
                    else:
                        assert t.abs().max() == 0, f"{key}: expert no real token chose has a gradient"
                        left_out.append(key)
        else:
            grads[f"grad:{name}"] = g
    return grads, left_out


def pixels(g, grids, vc):
    n = int(torch.tensor(grids).prod(-1).sum())
    return torch.randn(n, vc.in_channels * vc.temporal_patch_size * vc.patch_size**2, generator=g)


def forward_case(name, model_name, rows, answer_lens, seed, description, grids=(), video_grids=()):
    """rows: token lists (prompt with images or a video, then the answer); the last answer_lens[i] are labelled."""
    model, mdir = build(model_name)
    g = torch.Generator().manual_seed(seed)
    ids, mask = left_pad(rows)
    labels = torch.full_like(ids, -100)
    for i, n in enumerate(answer_lens):
        labels[i, ids.shape[1] - n:] = ids[i, ids.shape[1] - n:]
    vc = model.config.vision_config
    inputs, tensors = {}, {}
    mm = torch.zeros_like(ids)
    if grids:
        grid_thw = torch.tensor(grids, dtype=torch.long)
        inputs.update(pixel_values=pixels(g, grids, vc), image_grid_thw=grid_thw)
        tensors.update({"in:pixel_values": inputs["pixel_values"], "in:image_grid_thw": grid_thw})
        mm = (ids == IMG).long() * mask
    if video_grids:
        vgrid = torch.tensor(video_grids, dtype=torch.long)
        inputs.update(pixel_values_videos=pixels(g, video_grids, vc), video_grid_thw=vgrid)
        tensors.update({"in:pixel_values_videos": inputs["pixel_values_videos"], "in:video_grid_thw": vgrid})
        mm = (ids == IMG).long() * mask * 2
    position_ids, deltas = model.model.get_rope_index(ids, mm_token_type_ids=mm, attention_mask=mask,
                                                      image_grid_thw=inputs.get("image_grid_thw"),
                                                      video_grid_thw=inputs.get("video_grid_thw"))
    single = ids.shape[0] == 1
    paths = stage_paths(model, per_layer=single)
    if not grids and not video_grids:
        paths = [p for p in paths if not p.startswith("model.visual")]
    cap = Capture(model, paths)
    routes = RouteCheck(model, mask)
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=mask, mm_token_type_ids=mm, labels=labels, **inputs)
    cap.remove()
    routes.remove()
    out.loss.backward()
    grads, left_out = expert_grads(model, routes.chosen)
    tensors.update({
        "in:input_ids": ids, "in:attention_mask": mask, "in:labels": labels,
        "rope:position_ids": position_ids, "rope:deltas": deltas,
        **cap.outputs, "logits": out.logits, "loss": out.loss.detach(), **grads,
    })
    print(f"  {name}: min routing margin {routes.min_margin:.2e}; no gradient for: {left_out or 'none'}")
    write_reference(OUT / f"{name}.safetensors", tensors, mdir, model.config.model_type, description,
                    {"min_routing_margin": f"{routes.min_margin:.3e}", "margin_bound": str(MARGIN),
                     "no_gradient": ",".join(left_out)})


@torch.no_grad()
def generate_case(name, model_name, rows, seed, description, grids=(), video_grids=(), new_tokens=32):
    model, mdir = build(model_name)
    g = torch.Generator().manual_seed(seed)
    ids, mask = left_pad(rows)
    vc = model.config.vision_config
    kwargs, tensors = {}, {}
    if grids:
        kwargs.update(pixel_values=pixels(g, grids, vc), image_grid_thw=torch.tensor(grids),
                      mm_token_type_ids=(ids == IMG).long() * mask)
        tensors.update({"in:pixel_values": kwargs["pixel_values"], "in:image_grid_thw": kwargs["image_grid_thw"]})
    if video_grids:
        kwargs.update(pixel_values_videos=pixels(g, video_grids, vc), video_grid_thw=torch.tensor(video_grids),
                      mm_token_type_ids=(ids == IMG).long() * mask * 2)
        tensors.update({"in:pixel_values_videos": kwargs["pixel_values_videos"],
                        "in:video_grid_thw": kwargs["video_grid_thw"]})
    routes = RouteCheck(model, mask)
    seq = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                         eos_token_id=model.config.eos_token_id, pad_token_id=PAD, **kwargs)
    routes.remove()
    print(f"  {name}: min routing margin {routes.min_margin:.2e}, {seq.shape[1] - ids.shape[1]} new tokens")
    tensors.update({"in:input_ids": ids, "in:attention_mask": mask, "gen:sequences": seq})
    write_reference(OUT / f"{name}.safetensors", tensors, mdir, model.config.model_type, description,
                    {"max_new_tokens": str(new_tokens), "min_routing_margin": f"{routes.min_margin:.3e}",
                     "margin_bound": str(MARGIN)})


def video_span(grid, g, merge=2):
    """<|begin_of_video|>, then per frame <|begin_of_image|> placeholders <|end_of_image|> and a timestamp's text
    tokens (as the processor writes them), then <|end_of_video|>."""
    t, h, w = grid
    frame = [ID["<|begin_of_image|>"]] + [IMG] * (h * w // merge**2) + [ID["<|end_of_image|>"]]
    return [BOV] + sum((frame + text(g, 2) for _ in range(t)), []) + [EOV]


def main():
    g = torch.Generator().manual_seed(17)
    asst = [ID["<|assistant|>"]]
    t1 = PROMPT_HEAD + text(g, 12) + asst + text(g, 6)
    forward_case("moe_a_text", "moe_a", [t1], [6], 31, "moe_a, text only, labels on the answer")
    one = PROMPT_HEAD + image_span([1, 6, 8]) + text(g, 5) + asst + text(g, 6)
    forward_case("moe_a_image", "moe_a", [one], [6], 32, "moe_a, one image [1,6,8]", grids=[[1, 6, 8]])
    two = PROMPT_HEAD + image_span([1, 4, 4]) + text(g, 3) + image_span([1, 6, 10]) + text(g, 4) + asst + text(g, 5)
    forward_case("moe_a_two_images", "moe_a", [two], [5], 33, "moe_a, two images of different sizes",
                 grids=[[1, 4, 4], [1, 6, 10]])
    r1 = PROMPT_HEAD + image_span([1, 4, 6]) + text(g, 8) + asst + text(g, 4)
    r2 = PROMPT_HEAD + image_span([1, 8, 4]) + text(g, 2) + asst + text(g, 3)
    forward_case("moe_a_batch", "moe_a", [r1, r2], [4, 3], 34, "moe_a, left-padded batch of 2 prompts with images",
                 grids=[[1, 4, 6], [1, 8, 4]])
    v = PROMPT_HEAD + video_span([2, 4, 6], g) + text(g, 3) + asst + text(g, 5)
    forward_case("moe_a_video", "moe_a", [v], [5], 35, "moe_a, a video of 2 temporal patches [2,4,6]",
                 video_grids=[[2, 4, 6]])
    b1 = PROMPT_HEAD + image_span([1, 4, 4]) + text(g, 6) + asst + text(g, 4)
    forward_case("moe_b_image", "moe_b", [b1], [4], 36, "moe_b (glm46v with glm4v_moe_text), one image [1,4,4]",
                 grids=[[1, 4, 4]])

    gt = PROMPT_HEAD + text(g, 9) + asst
    generate_case("moe_a_gen_text", "moe_a", [gt], 41, "moe_a, greedy, text only")
    gi = PROMPT_HEAD + image_span([1, 6, 8]) + text(g, 4) + asst
    generate_case("moe_a_gen_image", "moe_a", [gi], 42, "moe_a, greedy, one image", grids=[[1, 6, 8]])
    g1 = PROMPT_HEAD + image_span([1, 4, 6]) + text(g, 7) + asst
    g2 = PROMPT_HEAD + image_span([1, 6, 4]) + text(g, 2) + asst
    generate_case("moe_a_gen_batch", "moe_a", [g1, g2], 43, "moe_a, greedy, left-padded batch of 2 with images",
                  grids=[[1, 4, 6], [1, 6, 4]])
    gv = PROMPT_HEAD + video_span([2, 4, 4], g) + text(g, 2) + asst
    generate_case("moe_a_gen_video", "moe_a", [gv], 44, "moe_a, greedy, a video [2,4,4]", video_grids=[[2, 4, 4]])
    gb = PROMPT_HEAD + image_span([1, 4, 4]) + text(g, 5) + asst
    generate_case("moe_b_gen_image", "moe_b", [gb], 45, "moe_b, greedy, one image", grids=[[1, 4, 4]])


if __name__ == "__main__":
    main()
