"""Vision-tower references (every stage of model.visual), the bicubic grid_sample op, and get_rope_index.

Files: spec/fixtures/vision/<model>_<case>.safetensors (stages), spec/fixtures/vision/grid_sample.safetensors,
spec/fixtures/rope/<case>.safetensors. Pixel values are not stored: they come from PIXEL_FORMULA (exact in float32,
the TypeScript specs rebuild them), which keeps the files small; `aux:pixel_values_row_sums` guards the formula.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from common import FIXTURES, write_reference
from common import Capture
from tiny_models import ID, build, model_dir
from transformers.models.glm4v.processing_glm4v import Glm4vProcessor

VISION = FIXTURES / "vision"
ROPE = FIXTURES / "rope"
IMG, BOI, EOI = ID["<|image|>"], ID["<|begin_of_image|>"], ID["<|end_of_image|>"]
BOV, EOV, PAD = ID["<|begin_of_video|>"], ID["<|end_of_video|>"], ID["<|endoftext|>"]
PIXEL_FORMULA = "pixel[r, c] = (((r * 131 + c * 29 + (c * c) % 97) % 251) - 125) / 64, r the row over all images"


def pixel_values(rows: int, width: int) -> torch.Tensor:
    r = torch.arange(rows)[:, None]
    c = torch.arange(width)[None, :]
    return (((r * 131 + c * 29 + (c * c) % 97) % 251) - 125).float() / 64


def stage_paths(depth: int) -> list[str]:
    paths = ["patch_embed", "post_conv_layernorm", "embeddings"] + [f"blocks.{i}" for i in range(depth)]
    return ["model.visual." + p for p in paths + ["post_layernorm", "downsample", "merger"]]


@torch.no_grad()
def vision_case(model_name: str, case: str, grids: list[list[int]], video: bool, description: str) -> None:
    model, mdir = build(model_name)
    vc = model.config.vision_config
    grid = torch.tensor(grids, dtype=torch.long)
    px = pixel_values(int(grid.prod(-1).sum()), vc.in_channels * vc.temporal_patch_size * vc.patch_size**2)
    cap = Capture(model, stage_paths(vc.depth))
    if video:  # get_video_features flattens [t, h, w] into t rows [1, h, w]
        model.model.get_video_features(px, video_grid_thw=grid)
    else:
        model.model.get_image_features(px, image_grid_thw=grid)
    cap.remove()
    key = "in:video_grid_thw" if video else "in:image_grid_thw"
    tensors = {key: grid, "aux:pixel_values_row_sums": px.sum(-1), **cap.outputs}
    write_reference(VISION / f"{model_name}_{case}.safetensors", tensors, mdir, model.config.model_type, description,
                    {"pixel_values": PIXEL_FORMULA})


def grid_sample_ref(table: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """table [Sh, Sw, D] sampled at the pixel centres of an h x w grid, as Glm4vVisionEmbeddings does -> [h, w, D]."""
    hpos, wpos = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    norm_w = ((wpos.flatten() + 0.5) / torch.tensor(float(w))) * 2 - 1
    norm_h = ((hpos.flatten() + 0.5) / torch.tensor(float(h))) * 2 - 1
    grid = torch.stack((norm_w, norm_h), dim=-1).unsqueeze(0).unsqueeze(2)
    out = F.grid_sample(table.permute(2, 0, 1)[None], grid, mode="bicubic", align_corners=False, padding_mode="border")
    return out.squeeze(0).squeeze(-1).permute(1, 0).reshape(h, w, -1)


def grid_sample_cases() -> None:
    g = torch.Generator().manual_seed(99)
    tensors = {}
    cases = [  # name, table [Sh, Sw], out [h, w]
        ("identity4", (4, 4), (4, 4)), ("up4_8x12", (4, 4), (8, 12)), ("down4_2x2", (4, 4), (2, 2)),
        ("mixed4_3x5", (4, 4), (3, 5)), ("one4_1x1", (4, 4), (1, 1)), ("mixed4_6x2", (4, 4), (6, 2)),
        ("up6_4x10", (6, 6), (4, 10)), ("identity6", (6, 6), (6, 6)), ("mixed6_12x3", (6, 6), (12, 3)),
        ("nonsq3x5_4x7", (3, 5), (4, 7)), ("up8_24x16", (8, 8), (24, 16)),
    ]
    for name, (sh, sw), (h, w) in cases:
        table = torch.randn(sh, sw, 3, generator=g).requires_grad_(True)
        out = grid_sample_ref(table, h, w)
        cot = torch.randn(out.shape, generator=g)
        (out * cot).sum().backward()
        tensors.update({f"table:{name}": table.detach(), f"out:{name}": out.detach(), f"cot:{name}": cot,
                        f"grad:{name}": table.grad})
    write_reference(VISION / "grid_sample.safetensors", tensors, model_dir("tiny_a"), "glm4v",
                    "F.grid_sample(bicubic, border, align_corners=False) of random tables [Sh, Sw, D=3] at the "
                    "pixel centres of [h, w]; grad = d sum(out * cot) / d table")


def image_span(grid, merge=2):
    t, h, w = grid
    return [BOI] + [IMG] * (t * h * w // merge**2) + [EOI]


def video_span(grid, timestamps, merge=2):
    """<|begin_of_video|> then, per temporal patch, an image span and its timestamp tokens, then <|end_of_video|>."""
    t, h, w = grid
    ids = [BOV]
    for ts in timestamps[:t]:
        ids += image_span([1, h, w], merge) + ts
    return ids + [EOV]


def rope_case(model, mdir, name, rows, image_grids, video_grids, description, pad=True):
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):  # left padding, as the processor's padding_side="left"
        ids[i, L - len(r):] = torch.tensor(r)
        mask[i, L - len(r):] = 1
    proc = SimpleNamespace(video_start_id=BOV, video_end_id=EOV, image_token_id=IMG)
    mm = torch.tensor(Glm4vProcessor.create_mm_token_type_ids(proc, ids.tolist()), dtype=torch.long)
    img = torch.tensor(image_grids, dtype=torch.long) if image_grids else None
    vid = torch.tensor(video_grids, dtype=torch.long) if video_grids else None
    pos, deltas = model.model.get_rope_index(ids, mm_token_type_ids=mm, image_grid_thw=img,
                                             video_grid_thw=None if vid is None else vid.clone(), attention_mask=mask)
    tensors = {"in:input_ids": ids, "in:attention_mask": mask, "in:mm_token_type_ids": mm,
               "rope:position_ids": pos, "rope:deltas": deltas}
    tensors["in:image_grid_thw"] = img if img is not None else torch.zeros(0, 3, dtype=torch.long)
    tensors["in:video_grid_thw"] = vid if vid is not None else torch.zeros(0, 3, dtype=torch.long)
    write_reference(ROPE / f"{name}.safetensors", tensors, mdir, model.config.model_type, description)


def rope_cases() -> None:
    model, mdir = build("tiny_a")
    g = torch.Generator().manual_seed(5)
    text = lambda n: torch.randint(0, 300, (n,), generator=g).tolist()  # noqa: E731
    head = [ID["[gMASK]"], ID["<sop>"], ID["<|user|>"]]
    tail = [ID["<|assistant|>"]]
    rope_case(model, mdir, "text_only", [head + text(9) + tail], [], [], "text only: arange on all three axes")
    rope_case(model, mdir, "one_image", [head + image_span([1, 4, 8]) + text(5) + tail], [[1, 4, 8]], [],
              "one image [1,4,8] (merged 2x4: the next text starts at st + 4)")
    rope_case(model, mdir, "two_images",
              [head + image_span([1, 6, 4]) + text(3) + image_span([1, 4, 4]) + text(4) + tail],
              [[1, 6, 4], [1, 4, 4]], [], "two images [1,6,4] and [1,4,4] with text between")
    stamps = [[48], [49, 50]]  # timestamp text tokens after each frame ("0", "12" in a real tokenizer)
    rope_case(model, mdir, "video", [head + video_span([2, 4, 6], stamps) + text(3) + tail], [], [[2, 4, 6]],
              "one video grid [2,4,6]: two frames of 2x3 tokens, timestamps between them")
    r1 = head + image_span([1, 4, 6]) + text(2) + tail
    r2 = head + text(3) + image_span([1, 8, 4]) + text(6) + tail
    rope_case(model, mdir, "left_padded_batch", [r1, r2], [[1, 4, 6], [1, 8, 4]], [],
              "left-padded batch of 2, one image each (grids consumed in batch order); padding gets 0")
    rope_case(model, mdir, "video_batch",
              [head + video_span([2, 4, 4], stamps) + tail, head + text(2) + video_span([1, 6, 4], stamps) + tail],
              [], [[2, 4, 4], [1, 6, 4]], "two videos in a left-padded batch of 2 (frame grids consumed in order)")


def main() -> None:
    grid_sample_cases()
    for name in ("tiny_a", "tiny_b"):
        vision_case(name, "image_8x12", [[1, 8, 12]], False,
                    "model.visual on one image grid [1,8,12] (beyond the position table in at least one direction)")
        vision_case(name, "two_images", [[1, 4, 4], [1, 10, 6]], False, "model.visual on two images [1,4,4], [1,10,6]")
        vision_case(name, "video", [[2, 6, 6]], True,
                    "get_video_features with video_grid_thw [[2,6,6]]: model.visual on [[1,6,6],[1,6,6]]")
    rope_cases()
