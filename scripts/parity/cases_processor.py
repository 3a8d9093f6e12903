"""Processor references (spec/fixtures/processor/): what the installed transformers processor (AutoProcessor on the tiny
model folders) makes of chats, images and videos, and what its tokenizer and chat templates give.

- chat_*.safetensors / video_*.safetensors: `proc:input_ids`, `proc:attention_mask`, `proc:mm_token_type_ids`,
  `proc:pixel_values`, `proc:image_grid_thw`, `proc:video_grid_thw`; metadata `messages`, `options`, `text` (the
  rendered prompts), `images` (PNG files beside the reference) and `videos` (grid-free video metadata).
- templates.json: chat templates rendered by transformers (the tiny template and the real GLM-4.1V-9B-Thinking one).
- tokenizer_cases.json: encode and decode cases of the tiny tokenizer.
- python_format.json: Python's format(x, '.Nf') for the timestamp labels of GLM-4.6V video prompts.
"""
from __future__ import annotations

import json
import math
import random
import shutil

import numpy as np
import torch
from PIL import Image, ImageDraw
from transformers import AutoProcessor
from transformers.video_utils import VideoMetadata

from common import FIXTURES, ROOT, write_json, write_reference
from tiny_models import model_dir

OUT = FIXTURES / "processor"
GLM41V_SRC = ROOT.parent / "shared" / "data" / "glm-configs" / "GLM-4.1V-9B-Thinking"
GLM41V_DST = FIXTURES / "glm-configs" / "GLM-4.1V-9B-Thinking"
MODEL_TYPE = {"tiny_a": "glm4v", "tiny_b": "glm46v"}


def shapes_image(h: int, w: int, seed: int) -> Image.Image:
    """A white picture with a few coloured shapes (the synthetic visual task), drawn deterministically."""
    rng = random.Random(seed)
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    for colour in ["red", "blue", "green"]:
        x, y = rng.randrange(0, w - 16), rng.randrange(0, h - 16)
        s = rng.randrange(8, 16)
        [d.ellipse, d.rectangle][rng.randrange(2)]((x, y, x + s, y + s), fill=colour)
    return img


# h, w, seed: both resample (to 56x56 and 56x84), and stay 16 and 24 patches
IMAGES = {"shapes_a.png": (50, 60, 1), "shapes_b.png": (45, 75, 2)}


def load_images() -> dict[str, Image.Image]:
    out = {}
    for name, (h, w, seed) in IMAGES.items():
        shapes_image(h, w, seed).save(OUT / name)
        out[name] = Image.open(OUT / name).convert("RGB")
    return out


def proc_tensors(out, keep_pixels: bool) -> dict[str, torch.Tensor]:
    keys = ["input_ids", "attention_mask", "mm_token_type_ids", "image_grid_thw", "video_grid_thw"]
    keys += ["pixel_values"] if keep_pixels else []
    return {f"proc:{k}": out[k] for k in keys if k in out}


def chat_case(name, model, chats, options, description, keep_pixels=False):
    """chats: one list of messages per batch row; image parts name PNG files, fed in order across the batch.
    Pixel values are kept only where asked (they are the bulk of a file; the grids are always kept)."""
    image_names = [part["image"] for chat in chats for m in chat if isinstance(m["content"], list)
                   for part in m["content"] if part["type"] == "image"]
    mdir = model_dir(model)
    proc = AutoProcessor.from_pretrained(mdir)
    imgs = load_images()
    prompts = [proc.apply_chat_template(c, **options) for c in chats]
    images = [imgs[n] for n in image_names] or None
    out = proc(text=prompts, images=images, padding=True, return_tensors="pt")
    assert out["input_ids"].shape[0] == len(chats)
    meta = {"messages": json.dumps(chats), "options": json.dumps(options), "text": json.dumps(prompts),
            "images": json.dumps(image_names), "processor_class": type(proc).__name__}
    write_reference(OUT / f"{name}.safetensors", proc_tensors(out, keep_pixels), mdir, MODEL_TYPE[model], description, meta)


def video_case(name, model, videos, description):
    """videos: (frames, fps, frames_indices); pixel values are not kept (the video processor is not ported here)."""
    mdir = model_dir(model)
    proc = AutoProcessor.from_pretrained(mdir)
    chat = [{"role": "user", "content": [{"type": "video"}] * len(videos) + [{"type": "text", "text": "Describe this video."}]}]
    prompt = proc.apply_chat_template(chat, add_generation_prompt=True)
    rng = np.random.RandomState(0)
    frames = [(rng.rand(n, 56, 84, 3) * 255).astype(np.uint8) for n, _, _ in videos]
    meta_objs = [VideoMetadata(total_num_frames=max(idx) + 1, fps=fps, frames_indices=list(idx), width=84, height=56)
                 for _, fps, idx in videos]
    out = proc(text=[prompt], videos=frames, video_metadata=meta_objs, do_sample_frames=False, return_tensors="pt")
    meta = {"messages": json.dumps(chat), "options": json.dumps({"add_generation_prompt": True}),
            "text": json.dumps([prompt]), "processor_class": type(proc).__name__,
            "videos": json.dumps([{"fps": fps, "frames_indices": list(idx)} for _, fps, idx in videos])}
    write_reference(OUT / f"{name}.safetensors", proc_tensors(out, False), mdir, MODEL_TYPE[model], description, meta)


SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
ASK_COLOUR = {"role": "user", "content": [{"type": "image", "image": "shapes_a.png"},
                                          {"type": "text", "text": "What colour is the circle?"}]}


def template_cases() -> dict:
    proc = AutoProcessor.from_pretrained(model_dir("tiny_b"))
    real = (GLM41V_DST / "chat_template.jinja").read_text()
    tools = [{"type": "function", "function": {"name": "count_shapes", "description": "Count the shapes of a colour.",
                                                "parameters": {"type": "object", "properties": {
                                                    "colour": {"type": "string", "enum": ["red", "green", "blue"]},
                                                    "min_size": {"type": "integer"}}, "required": ["colour"]}}}]
    two_images = {"role": "user", "content": [{"type": "image", "image": "shapes_a.png"}, {"type": "text", "text": "and"},
                                              {"type": "image", "url": "shapes_b.png"},
                                              {"type": "text", "text": "How many shapes are there?"}]}
    chats = {
        "multi_turn": [SYSTEM, ASK_COLOUR, {"role": "assistant", "content": "The circle is red."},
                       {"role": "user", "content": "Where is the square?"}],
        "string_content": [{"role": "user", "content": "How many shapes are there?"}],
        "two_images": [two_images],
        "video": [{"role": "user", "content": [{"type": "video", "video": "clip.mp4"}, {"type": "text", "text": "Describe this video."}]}],
        "metadata": [ASK_COLOUR, {"role": "assistant", "metadata": "count_shapes", "content": "three"},
                     {"role": "user", "content": "Thank you! ü é 😀"}],
        "reasoning": [ASK_COLOUR, {"role": "assistant", "content": "red", "reasoning_content": "\nI see a red circle.\n"},
                      {"role": "user", "content": "And the square?"}, {"role": "assistant", "content": "blue", "thinking": "Left side."},
                      {"role": "user", "content": "Where is the triangle?"}],
        "tools": [SYSTEM, {"role": "user", "content": "How many red shapes?"},
                  {"role": "assistant", "content": "", "tool_calls": [
                      {"type": "function", "function": {"name": "count_shapes", "arguments": {"colour": "red", "min_size": 2}}},
                      {"type": "function", "function": {"name": "count_shapes", "arguments": {"colour": "blue"}}}]},
                  {"role": "tool", "content": "2"}],
    }
    variants = {
        "default": {"add_generation_prompt": True},
        "no_generation_prompt": {"add_generation_prompt": False},
        "thinking_on": {"add_generation_prompt": True, "enable_thinking": True},
        "thinking_off": {"add_generation_prompt": True, "enable_thinking": False},
    }
    cases = []
    for template_name, template in [("tiny", None), ("glm41v", real)]:
        for chat_name, chat in chats.items():
            for var_name, opts in variants.items():
                if template_name == "glm41v" and var_name.startswith("thinking"):
                    continue  # GLM-4.1V's template has no thinking switch
                kwargs = dict(opts)
                if chat_name == "tools":
                    kwargs["tools"] = tools
                if template is not None:
                    kwargs["chat_template"] = template
                expected = proc.apply_chat_template(json.loads(json.dumps(chat)), **kwargs)
                kwargs.pop("chat_template", None)
                cases.append({"template": template_name, "name": f"{chat_name}/{var_name}", "messages": chat,
                              "options": kwargs, "expected": expected})
    return {"model": "../models/tiny_b", "glm41v_template": "../glm-configs/GLM-4.1V-9B-Thinking/chat_template.jinja",
            "cases": cases}


def tokenizer_cases() -> dict:
    proc = AutoProcessor.from_pretrained(model_dir("tiny_b"))
    tok = proc.tokenizer
    texts = ["What colour is the circle?", "Where is the SQUARE? It's at the TOP-left, isn't it?",
             "How many shapes: 12345 or 7?\n\n  two\tthree  ", "ü é 😀 日本 — “quoted”",
             "[gMASK]<sop><|user|>\nDescribe<|image|><|image|> this.<|assistant|>\n<think></think>\nred<|endoftext|>",
             "", " ", "<|image|>x<|image|>", "<think>a</think>b"]
    encode = [{"text": t, "ids": tok(t)["input_ids"]} for t in texts]
    rng = random.Random(7)
    id_lists = [e["ids"] for e in encode if e["ids"]] + [[rng.randrange(0, 381) for _ in range(24)] for _ in range(3)]
    decode = [{"ids": ids, "skip_special_tokens": skip, "expected": tok.decode(ids, skip_special_tokens=skip)}
              for ids in id_lists for skip in (False, True)]
    batch = [ids for ids in id_lists if any(i >= 352 for i in ids)][:3]
    batch_decode = {"ids": batch, "expected": proc.batch_decode(batch),
                    "expected_skip_special": proc.batch_decode(batch, skip_special_tokens=True),
                    "expected_post_process": proc.post_process_image_text_to_text(batch)}
    special = {t: tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens}
    return {"model": "../models/tiny_b", "encode": encode, "decode": decode, "batch_decode": batch_decode,
            "special_ids": special, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
            "padding_side": tok.padding_side}


def python_format_cases() -> list:
    rng = random.Random(3)
    xs = [0.25, 1.25, 0.35, 2.675, 0.05, 0.15, 0.45, 0.5, 1.5, 2.5, -0.25, -0.04, 0.0, -0.0, 1e-320, 5e-324,
          123456.75, 1e22, 2.0**60 + 2048, 9007199254740993.0, 0.95, 9.95, 99.95, 1 / 3, 2 / 3]
    xs += [i / fps for fps in (24, 29.97, 30000 / 1001, 25, 4, 3, 2, 0.5) for i in range(0, 120, 3)]
    xs += [rng.uniform(-1000, 1000) for _ in range(40)] + [rng.randrange(0, 2000) / 8 for _ in range(40)]
    xs += [math.inf, -math.inf, math.nan]
    return [{"x": repr(x), "digits": d, "expected": format(x, f".{d}f")} for x in xs for d in (0, 1, 2, 3)]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    GLM41V_DST.mkdir(parents=True, exist_ok=True)
    for f in ["chat_template.jinja", "generation_config.json"]:
        shutil.copyfile(GLM41V_SRC / f, GLM41V_DST / f)
    ask_b = {"role": "user", "content": [{"type": "image", "image": "shapes_b.png"},
                                         {"type": "text", "text": "How many shapes are there? Answer with one word."}]}
    text_chat = [SYSTEM, {"role": "user", "content": "Where is the triangle?"}]
    two = [{"role": "user", "content": [{"type": "image", "image": "shapes_a.png"}, {"type": "text", "text": "Left picture, and right:"},
                                        {"type": "image", "image": "shapes_b.png"}, {"type": "text", "text": "What colour is the square?"}]}]
    gen = {"add_generation_prompt": True}
    chat_case("chat_text", "tiny_b", [text_chat], gen, "text-only chat, Glm46VProcessor")
    chat_case("chat_text_nothink", "tiny_b", [text_chat], {**gen, "enable_thinking": False},
              "text-only chat with enable_thinking=False")
    chat_case("chat_two_images", "tiny_b", [two], gen, "one chat with two images of different sizes", keep_pixels=True)
    chat_case("chat_batch", "tiny_b", [[ASK_COLOUR], [SYSTEM, ask_b]], gen,
              "a left-padded batch of two chats, one image each, consumed in batch order")
    chat_case("chat_image_glm4v", "tiny_a", [[ask_b]], gen, "one image, Glm4vProcessor")
    video_case("video_glm46v", "tiny_b", [(4, 4.0, [1, 2, 5, 6]), (6, None, [0, 3, 6, 9, 12, 15])],
               "two videos: fps 4 (timestamps 0.25, 1.25 -> '0.2', '1.2') and no fps (24 assumed)")
    video_case("video_glm4v", "tiny_a", [(4, 4.0, [1, 2, 5, 6]), (6, None, [0, 3, 30, 33, 60, 63])],
               "two videos, GLM-4.1V labels str(int(t))")
    write_json(OUT / "templates.json", template_cases())
    write_json(OUT / "tokenizer_cases.json", tokenizer_cases())
    write_json(OUT / "python_format.json", python_format_cases())
