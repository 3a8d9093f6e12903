"""Video references (spec/fixtures/video/): frame sampling, the video processor, and the tiny model on videos.

- clip_a/, clip_b/, clip_c/: small committed clips, one PNG per frame plus metadata.json ({"fps": ...}), drawn here
  with fixed seeds (smooth moving colours, a moving square, mild noise). clip_a is 60x90 (resized to 56x84),
  clip_c has 13 frames, more than the tiny pixel budget holds at 56x84, so smart_resize shrinks it to 28x56.
- sampling.json: Glm46VVideoProcessor.sample_frames and Glm4vVideoProcessor.sample_frames (fps 2 and others) on
  metadata cases, with the timestamps (VideoMetadata.timestamps) and the processors' frame labels.
- proc_*.safetensors: AutoProcessor on a tiny model folder with the clips' frames as arrays plus VideoMetadata
  (do_sample_frames on): `proc:input_ids`, `proc:attention_mask`, `proc:mm_token_type_ids`,
  `proc:pixel_values_videos`, `proc:video_grid_thw`; metadata `messages`, `text`, `videos` (folders, fps),
  `frames_indices` and `timestamps` as the processor sampled them.
- model_*.safetensors: the processor's outputs through tiny_a: `rope:*`, every `out:` stage, `logits` and greedy
  `gen:sequences`. model_mixed (an image and a video in one prompt) is beyond the reference, whose placeholder
  check rejects it: it is built from reference pieces (get_image_features, get_video_features, get_rope_index,
  the language model and lm_head), image features scattered onto image placeholders and video features onto
  video-frame placeholders, in order.
"""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor
from transformers.models.glm46v.video_processing_glm46v import Glm46VVideoProcessor
from transformers.models.glm4v.video_processing_glm4v import Glm4vVideoProcessor
from transformers.video_utils import VideoMetadata

from cases_model import stage_paths
from common import FIXTURES, Capture, write_json, write_reference
from tiny_models import EOS, PAD, build, model_dir

OUT = FIXTURES / "video"
IMAGE_FILE = FIXTURES / "processor" / "shapes_a.png"  # made by cases_processor.py (50x60 -> 56x56)
# name: (frames, height, width, fps, seed)
CLIPS = {"clip_a": (8, 60, 90, 2, 1), "clip_b": (7, 56, 84, 3, 2), "clip_c": (13, 56, 84, 2, 3)}


def draw_clip(n: int, h: int, w: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    ph = rng.uniform(0, 6.28, 3)
    frames = []
    for t in range(n):
        r = 128 + 100 * np.sin(x / 11.0 + 0.6 * t + ph[0])
        g = 50 + 150 * (y / h) * (0.7 + 0.3 * np.cos(x / 7.0 - 0.4 * t + ph[1]))
        b = 200 - 120 * (x / w) + 40 * np.sin((x + y) / 9.0 + ph[2] + 0.3 * t)
        img = np.stack([r, g, b], -1) + rng.normal(0, 2.0, (h, w, 3))
        s, x0, y0 = 12, (5 + 6 * t) % (w - 12), (3 + 4 * t) % (h - 12)
        img[y0:y0 + s, x0:x0 + s] = [240, 30, 30]
        frames.append(np.clip(np.round(img), 0, 255).astype(np.uint8))
    return frames


def make_clips() -> None:
    for name, (n, h, w, fps, seed) in CLIPS.items():
        d = OUT / name
        d.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(draw_clip(n, h, w, seed)):
            Image.fromarray(f).save(d / f"frame_{i:03d}.png", optimize=True)
        write_json(d / "metadata.json", {"fps": fps})


def load_clip(name: str) -> np.ndarray:
    d = OUT / name
    files = sorted(p for p in d.iterdir() if p.suffix == ".png")
    return np.stack([np.array(Image.open(p).convert("RGB")) for p in files])


# ---- sampling ---------------------------------------------------------------------------------------------------

def pyav_meta(total: int, rate: Fraction) -> dict:
    """What transformers' PyAV reader reports: fps = float(average_rate), duration = float(total / average_rate)."""
    return {"total": total, "fps": float(rate), "duration": float(total / rate)}


SAMPLING_CASES = {
    "short clip 5 s at 30 fps": {"total": 150, "fps": 30.0, "duration": 5.0},
    "exactly 30 s at 30 fps": {"total": 900, "fps": 30.0, "duration": 30.0},
    # i * (1 / fps) and i / fps differ here: the reference multiplies
    "5 s at 24 fps (frame times i * (1/24))": {"total": 120, "fps": 24.0, "duration": 5.0},
    "10 s at 12 fps (frame times i * (1/12))": {"total": 120, "fps": 12.0, "duration": 10.0},
    "just over 30 s (31 s at 24 fps)": {"total": 744, "fps": 24.0, "duration": 31.0},
    "5 min at 30 fps": {"total": 9000, "fps": 30.0, "duration": 300.0},
    "just over 5 min (301 s at 2 fps)": {"total": 602, "fps": 2.0, "duration": 301.0},
    "400 s at 1 fps (GLM-4.1V takes every frame)": {"total": 400, "fps": 1.0, "duration": 400.0},
    "45 min at 25 fps (over 40 min)": {"total": 67500, "fps": 25.0, "duration": 2700.0},
    "40 min exactly at 1 fps": {"total": 2400, "fps": 1.0, "duration": 2400.0},
    "fewer frames than wanted (8 frames at 2 fps)": {"total": 8, "fps": 2.0, "duration": 4.0},
    "one frame": {"total": 1, "fps": 30.0, "duration": None},
    "two frames": {"total": 2, "fps": 30.0, "duration": None},
    "29.97 fps, 1000 frames (PyAV metadata)": pyav_meta(1000, Fraction(2997, 100)),
    "NTSC 30000/1001, 1800 frames (PyAV metadata)": pyav_meta(1800, Fraction(30000, 1001)),
    "NTSC 30000/1001, 12 min (PyAV metadata)": pyav_meta(21600, Fraction(30000, 1001)),
    "no duration: round(9/4 = 2.25) + 1": {"total": 10, "fps": 4.0, "duration": None},
    "no duration: round(10/4 = 2.5) + 1, half to even": {"total": 11, "fps": 4.0, "duration": None},
    "no duration: round(14/4 = 3.5) + 1, half to even": {"total": 15, "fps": 4.0, "duration": None},
    "duration 0 falls back to the frame count": {"total": 48, "fps": 8.0, "duration": 0.0},
    "quarter-second timestamps (8 fps)": {"total": 24, "fps": 8.0, "duration": 3.0},
    "quarter-second timestamps (4 fps, 61 frames)": {"total": 61, "fps": 4.0, "duration": None},
    "labels 0.25, 1.25, 2.25, 3.25 (8 fps, 30 frames)": {"total": 30, "fps": 8.0, "duration": None},
    "slow source 0.5 fps": {"total": 20, "fps": 0.5, "duration": 40.0},
    "fractional duration 30.5 s at 10 fps": {"total": 305, "fps": 10.0, "duration": 30.5},
    "clip_a": {"total": 8, "fps": 2.0, "duration": None},
    "clip_b": {"total": 7, "fps": 3.0, "duration": None},
    "clip_b at 8 fps": {"total": 7, "fps": 8.0, "duration": None},
    "clip_c": {"total": 13, "fps": 2.0, "duration": None},
}
GLM4V_FPS = [2, 1, 0.5, 3]


def policy(indices: list[int], timestamps: list[float], labels: list[str]) -> dict:
    """Timestamps (exact doubles) only for short lists, to keep the file small; labels always."""
    out = {"indices": indices, "labels": labels}
    if len(indices) <= 100:
        out["timestamps"] = timestamps
    return out


def sampling_cases() -> dict:
    p46, p4 = Glm46VVideoProcessor(), Glm4vVideoProcessor()
    cases = []
    for name, m in SAMPLING_CASES.items():
        meta = VideoMetadata(total_num_frames=m["total"], fps=m["fps"], duration=m["duration"])
        entry = {"name": name, "total_frames": m["total"], "fps": m["fps"], "duration": m["duration"]}
        idx = p46.sample_frames(meta).tolist()
        meta.frames_indices = idx
        ts = meta.timestamps
        entry["glm46v"] = policy(idx, ts, [f"{t:.1f} seconds" for t in ts[::2]])
        entry["glm4v"] = {}
        for fps in GLM4V_FPS:
            idx = p4.sample_frames(VideoMetadata(total_num_frames=m["total"], fps=m["fps"], duration=m["duration"]), fps=fps).tolist()
            meta.frames_indices = idx
            ts = meta.timestamps
            entry["glm4v"][str(fps)] = policy(idx, ts, [str(int(t)) for t in ts[::2]])
        cases.append(entry)
    # What numpy's linspace(dtype=int) gives, for the port of it.
    linspace = [{"start": a, "stop": b, "num": n, "expected": np.linspace(a, b, n, dtype=int).tolist(),
                 "float": np.linspace(a, b, n).tolist()}
                for a, b, n in [(0, 9, 30), (0, 6, 12), (3, 1000, 641), (0, 0, 5), (0, 7, 1), (0, 7, 0), (5, 5, 3),
                                (0, 67499, 640), (0, 2700.0, 600), (0, 301.0, 600)]]
    return {"transformers": __import__("transformers").__version__, "cases": cases, "linspace": linspace}


# ---- processor ----------------------------------------------------------------------------------------------------

def video_chat(clips: list[str], text: str, image: bool = False) -> list[dict]:
    parts = ([{"type": "image"}] if image else []) + [{"type": "video"} for _ in clips] + [{"type": "text", "text": text}]
    return [{"role": "user", "content": parts}]


def run_processor(model: str, rows: list[tuple[list[str], str, bool]], fps_override: dict | None = None):
    """rows: (clips, question, with_image) per batch row. Returns the processor output, prompts and video notes."""
    proc = AutoProcessor.from_pretrained(model_dir(model))
    chats = [video_chat(clips, q, img) for clips, q, img in rows]
    prompts = [proc.apply_chat_template(c, add_generation_prompt=True) for c in chats]
    names = [c for clips, _, _ in rows for c in clips]
    fps = [(fps_override or {}).get(n, CLIPS[n][3]) for n in names]
    frames = [load_clip(n) for n in names]
    metas = [VideoMetadata(total_num_frames=len(f), fps=float(r)) for f, r in zip(frames, fps)]
    kwargs = {}
    if any(img for _, _, img in rows):
        kwargs["images"] = [Image.open(IMAGE_FILE).convert("RGB")]
    out = proc(text=prompts, videos=frames, video_metadata=metas, do_sample_frames=True, padding=True,
               return_tensors="pt", **kwargs)
    # the metadata the processor sampled with (its __call__ does not return it): the video processor alone
    sampled = proc.video_processor(videos=frames, video_metadata=[VideoMetadata(total_num_frames=m.total_num_frames, fps=m.fps)
                                                                  for m in metas],
                                   do_sample_frames=True, return_metadata=True)["video_metadata"]
    notes = {"messages": json.dumps(chats), "text": json.dumps(prompts), "processor_class": type(proc).__name__,
             "videos": json.dumps([{"folder": n, "fps": r} for n, r in zip(names, fps)]),
             "frames_indices": json.dumps([[int(i) for i in m.frames_indices] for m in sampled]),
             "timestamps": json.dumps([list(m.timestamps) for m in sampled])}
    if "images" in kwargs:
        notes["images"] = json.dumps(["../processor/shapes_a.png"])
    return out, notes


PROC_KEYS = ["input_ids", "attention_mask", "mm_token_type_ids", "video_grid_thw"]


def proc_case(name: str, model: str, rows, description: str, fps_override: dict | None = None, pixels=True) -> None:
    out, notes = run_processor(model, rows, fps_override)
    tensors = {f"proc:{k}": out[k] for k in PROC_KEYS + (["pixel_values_videos"] if pixels else [])}
    write_reference(OUT / f"{name}.safetensors", tensors, model_dir(model), {"tiny_a": "glm4v", "tiny_b": "glm46v"}[model],
                    description, notes)


# ---- model --------------------------------------------------------------------------------------------------------

@torch.no_grad()
def model_case(name: str, rows, description: str, new_tokens: int = 10) -> None:
    model, mdir = build("tiny_a")
    out, notes = run_processor("tiny_a", rows)
    ids, mask, mm = out["input_ids"], out["attention_mask"], out["mm_token_type_ids"]
    pvv, vgrid = out["pixel_values_videos"], out["video_grid_thw"]
    pos, deltas = model.model.get_rope_index(ids, mm_token_type_ids=mm, video_grid_thw=vgrid, attention_mask=mask)
    cap = Capture(model, stage_paths(model))
    res = model(input_ids=ids, attention_mask=mask, pixel_values_videos=pvv, video_grid_thw=vgrid, mm_token_type_ids=mm)
    cap.remove()
    model.model.rope_deltas = None
    seq = model.generate(input_ids=ids, attention_mask=mask, pixel_values_videos=pvv, video_grid_thw=vgrid,
                         mm_token_type_ids=mm, max_new_tokens=new_tokens, do_sample=False, eos_token_id=EOS,
                         pad_token_id=PAD)
    tensors = {"in:input_ids": ids, "in:attention_mask": mask, "in:pixel_values_videos": pvv, "in:video_grid_thw": vgrid,
               "rope:position_ids": pos, "rope:deltas": deltas, **cap.outputs, "logits": res.logits, "gen:sequences": seq}
    write_reference(OUT / f"{name}.safetensors", tensors, mdir, "glm4v", description,
                    {**notes, "max_new_tokens": str(new_tokens)})


@torch.no_grad()
def mixed_case(name: str, description: str) -> None:
    """An image and a video in one prompt: reference pieces assembled by the rule the TypeScript model follows."""
    model, mdir = build("tiny_a")
    out, notes = run_processor("tiny_a", [(["clip_c"], "Is the square in the picture also in the video?", True)])
    ids, mask, mm = out["input_ids"], out["attention_mask"], out["mm_token_type_ids"]
    pv, igrid = out["pixel_values"], out["image_grid_thw"]
    pvv, vgrid = out["pixel_values_videos"], out["video_grid_thw"]
    assert set(mm.unique().tolist()) == {0, 1, 2}
    try:  # the reference itself refuses the mixed prompt (image and video masks are both input_ids == image_token_id)
        model(input_ids=ids, attention_mask=mask, pixel_values=pv, image_grid_thw=igrid, pixel_values_videos=pvv,
              video_grid_thw=vgrid, mm_token_type_ids=mm)
        raise AssertionError("transformers accepted an image and a video in one prompt: rebuild this case from it")
    except ValueError as e:
        assert "do not match" in str(e), e
    model.model.rope_deltas = None
    pos, deltas = model.model.get_rope_index(ids, mm_token_type_ids=mm, image_grid_thw=igrid, video_grid_thw=vgrid,
                                             attention_mask=mask)
    cap = Capture(model, stage_paths(model))
    image_feats = torch.cat(model.model.get_image_features(pv, igrid).pooler_output)  # first: the captured visual call
    video_feats = torch.cat(model.model.get_video_features(pvv, vgrid).pooler_output)
    embeds = model.model.get_input_embeddings()(ids)
    embeds[mm == 1] = image_feats  # boolean-mask assignment fills row-major, as masked_scatter
    embeds[mm == 2] = video_feats
    res = model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos)
    cap.remove()
    tensors = {"in:input_ids": ids, "in:attention_mask": mask, "in:pixel_values": pv, "in:image_grid_thw": igrid,
               "in:pixel_values_videos": pvv, "in:video_grid_thw": vgrid, "rope:position_ids": pos,
               "rope:deltas": deltas, **cap.outputs, "logits": res.logits}
    write_reference(OUT / f"{name}.safetensors", tensors, mdir, "glm4v", description, notes)
    # the video alone and the image alone, for the spec that the mixed prompt's features are theirs
    write_reference(OUT / f"{name}_features.safetensors",
                    {"aux:image_features": image_feats, "aux:video_features": video_feats}, mdir, "glm4v",
                    "get_image_features / get_video_features of the mixed case's image and video, each run alone")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    make_clips()
    (OUT / "sampling.json").write_text(json.dumps(sampling_cases(), separators=(",", ":")) + "\n")
    proc_case("proc_clip_a", "tiny_a", [(["clip_a"], "What moves?", False)],
              "Glm4vProcessor on clip_a (8 frames 60x90, fps 2; resized to 56x84), frames sampled by the processor")
    proc_case("proc_clip_b_glm46v", "tiny_b", [(["clip_b"], "What moves?", False)],
              "Glm46VProcessor on clip_b at fps 8: timestamps 0, 0.25, 0.5, 0.75 -> '0.0', '0.2', '0.5', '0.8 seconds'",
              fps_override={"clip_b": 8}, pixels=False)
    # The model files' in:* tensors are the processor's outputs too (the processor specs check them as well).
    model_case("model_video", [(["clip_c"], "What moves?", False)],
               "tiny_a on clip_c through the processor (13 frames -> 14, 56x84 shrunk to 28x56 by the pixel budget)")
    model_case("model_video_batch", [(["clip_b"], "What moves?", False), (["clip_c"], "Describe this video.", False)],
               "tiny_a, left-padded batch of two videos of different lengths and sizes: clip_b (7 frames at fps 3 -> "
               "indices 0 2 3 5 6 6, 56x84) and clip_c (14 frames, 28x56)")
    mixed_case("model_mixed", "tiny_a, one image then one video in one prompt (beyond the reference: built from its pieces)")
