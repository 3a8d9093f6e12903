"""Reference tensors for the GLM-4 text decoder (Glm4vTextModel): a left-padded batch with explicit M-RoPE positions.

Writes spec/fixtures/text/tiny_a_batch.safetensors and tiny_b_batch.safetensors. Each holds `in:input_ids`,
`in:attention_mask`, `in:position_ids` [3, B, L], `out:model.language_model.embed_tokens`,
`out:model.language_model.layers.N`, `out:model.language_model.norm` and `logits`.

The positions are what get_rope_index gives for "text, image, text" (no pixels are fed: the ids are plain text ids,
only the positions carry the image layout), so the three rows differ: t is constant over the image span while h/w
walk its grid, and the text after the image resumes at start + max(h, w).

Attention runs as `eager` (eager_attention_forward in modeling_glm4v.py, additive finfo.min mask). On real tokens it
equals the default `sdpa` to ~2e-6; it differs only on the padding rows, which see no unmasked key: eager then
averages uniformly over all keys (score + finfo.min rounds to finfo.min), sdpa gives something else. Using eager makes
the padding rows well defined, so the specs compare them too.

3 vs 4 position rows in transformers 5.24 (checked with this model): a [3, B, L] tensor is used as the (t, h, w)
rows. A [4, B, L] tensor's row 0 is "text positions", used only to build the mask: with no attention_mask and no
cache it detects packed sequences (row 0 restarting at 0) and makes the mask block-diagonal; rows 1..3 are the M-RoPE
ids. With an attention_mask (as here) 4 rows [text; t; h; w] give exactly the 3-row result (max diff 0.0).
"""
from __future__ import annotations

import torch

import tiny_models
from common import FIXTURES, Capture, write_reference

# (text, image grid after merge (t, h, w), text) per sample; total lengths 11 and 7
LAYOUTS = [(3, (1, 2, 3), 2), (1, (1, 2, 2), 2)]
L = 11


def mrope_positions(n_text_before: int, grid: tuple[int, int, int], n_text_after: int) -> torch.Tensor:
    """[3, n] positions as get_rope_index gives them: text arange, then an image meshgrid offset by the start,
    then text resuming at start + max(t, h, w) of the grid."""
    t, h, w = grid
    rows = [list(range(n_text_before)) for _ in range(3)]
    start = n_text_before
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    for r, g in zip(rows, (tt, hh, ww)):
        r.extend((g.flatten() + start).tolist())
    nxt = start + max(t, h, w)
    for r in rows:
        r.extend(range(nxt, nxt + n_text_after))
    return torch.tensor(rows)


def batch_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(LAYOUTS), L), tiny_models.PAD, dtype=torch.long)
    mask = torch.zeros(len(LAYOUTS), L, dtype=torch.long)
    pos = torch.zeros(3, len(LAYOUTS), L, dtype=torch.long)
    for b, (before, grid, after) in enumerate(LAYOUTS):
        p = mrope_positions(before, grid, after)
        n = p.shape[1]
        ids[b, L - n:] = torch.randint(0, tiny_models.FIRST_SPECIAL, (n,), generator=g)
        mask[b, L - n:] = 1
        pos[:, b, L - n:] = p
    assert not torch.equal(pos[0], pos[1]) and not torch.equal(pos[1], pos[2])
    return ids, mask, pos


@torch.no_grad()
def run(name: str) -> None:
    model, mdir = tiny_models.build(name)
    model.set_attn_implementation("eager")
    ids, mask, pos = batch_inputs(seed=7)
    n_layers = model.config.text_config.num_hidden_layers
    paths = ["model.language_model.embed_tokens"]
    paths += [f"model.language_model.layers.{i}" for i in range(n_layers)]
    paths += ["model.language_model.norm"]
    cap = Capture(model, paths)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
    cap.remove()
    tensors = {"in:input_ids": ids, "in:attention_mask": mask, "in:position_ids": pos, **cap.outputs, "logits": logits}
    write_reference(
        FIXTURES / "text" / f"{name}_batch.safetensors", tensors, mdir, model.config.model_type,
        f"{name}: text decoder on a left-padded batch (real lengths 11 and 7) with explicit 3-row M-RoPE positions "
        "of a text-image-text layout; eager attention; every decoder layer, the final norm and the logits",
        {"attn_implementation": "eager", "padding_rows": "defined (eager: uniform attention over all keys)"},
    )


def main() -> None:
    for name in ("tiny_a", "tiny_b"):
        run(name)


if __name__ == "__main__":
    main()
