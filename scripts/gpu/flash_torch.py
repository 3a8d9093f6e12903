"""A GLM-4.6V-Flash-shaped model with random weights, and the PyTorch side of its rows (scripts/gpu/gpu_run.sh).

  make --out DIR [--text-layers 40] [--vision-blocks 24] [--image 1024] [--text-tokens 64] [--device cuda]
      GLM-4.6V-Flash's widths (text 4096 x 40 layers, 32 heads / 2 KV heads, MLP 13696, vocab 151552; vision 1536 x
      24 blocks), weights N(0, 0.02) as transformers' _init_weights, saved in bf16 with inputs.safetensors: one
      image of --image x --image pixels (random patch rows, its grid) plus --text-tokens text tokens.
  run --model DIR --device cuda --dtype bfloat16|float32 [--decode-steps 16] [--logits FILE] [--threads N]
      [--decode-context N]
      load time and peak RSS, the first answer (prefill of the image + text; its first token's time since the process
      started: the cold start), a second prefill, greedy decode steps (after the image prefill, or after N tokens of
      context_ids), GPU memory; one JSON line; --logits writes the prefill's last-token logits (float32) for the
      comparison with ours. scripts/bench/bench.ts --rows real runs it on the CPU.
"""
from __future__ import annotations

import argparse
import json
import time

FLASH = dict(  # GLM-4.6V-Flash (zai-org/GLM-4.6V-Flash config.json): the GLM-4.1V-9B architecture
    text=dict(vocab_size=151552, hidden_size=4096, intermediate_size=13696, num_hidden_layers=40, num_attention_heads=32,
              num_key_value_heads=2, max_position_embeddings=131072, rms_norm_eps=1e-5, attention_bias=True,
              rope_parameters=dict(rope_type="default", rope_theta=500000.0, partial_rotary_factor=0.5, mrope_section=[8, 12, 12]),
              pad_token_id=151329, eos_token_id=[151329, 151336, 151338], hidden_act="silu"),
    vision=dict(depth=24, hidden_size=1536, num_heads=12, intermediate_size=13696, out_hidden_size=4096, patch_size=14,
                image_size=336, spatial_merge_size=2, temporal_patch_size=2, rms_norm_eps=1e-5, in_channels=3, hidden_act="silu",
                attention_bias=False),
    ids=dict(image_token_id=151343, video_token_id=151344, image_start_token_id=151339, image_end_token_id=151340,
             video_start_token_id=151341, video_end_token_id=151342),
)


def make(a) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import Glm4vConfig, Glm4vForConditionalGeneration

    t0 = time.perf_counter()
    text = dict(FLASH["text"], num_hidden_layers=a.text_layers)
    vision = dict(FLASH["vision"], depth=a.vision_blocks)
    config = Glm4vConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **FLASH["ids"],
                         eos_token_id=text["eos_token_id"], pad_token_id=text["pad_token_id"])
    torch.manual_seed(0)
    with torch.device(a.device):
        model = Glm4vForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(a.out, max_shard_size=a.shard_size)
    del model
    side = round(a.image / 28) * 2  # smart_resize to a multiple of 28 px: patches per side
    patches, tokens = side * side, side * side // 4
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(patches, 3 * 2 * 14 * 14, generator=g)
    ids = [FLASH["ids"]["image_start_token_id"]] + [FLASH["ids"]["image_token_id"]] * tokens + [FLASH["ids"]["image_end_token_id"]]
    ids += torch.randint(0, 151000, (a.text_tokens,), generator=g).tolist()
    context = torch.randint(0, 151000, (1, a.context), generator=g, dtype=torch.int32)  # the decode row's text context
    save_file({"pixel_values": pixels, "input_ids": torch.tensor([ids], dtype=torch.int32), "context_ids": context}, f"{a.out}/inputs.safetensors",
              metadata={"image_grid_thw": json.dumps([[1, side, side]]), "params": str(n)})
    print(json.dumps({"params": n, "patches": patches, "prefill_tokens": len(ids), "make_s": time.perf_counter() - t0}))


def since_start_s() -> float:
    """Seconds since this process started (/proc: the same clock scripts/bench/load_compiled.js reads for ours)."""
    import os
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def vm_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return -1


def run(a) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoModelForImageTextToText, DynamicCache
    from transformers.utils import logging

    logging.disable_progress_bar()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev, dtype = torch.device(a.device), getattr(torch, a.dtype)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with safe_open(f"{a.model}/inputs.safetensors", "pt") as f:
        pixels, ids = f.get_tensor("pixel_values").to(dev, dtype), f.get_tensor("input_ids").to(dev, torch.long)
        grid = torch.tensor(json.loads(f.metadata()["image_grid_thw"]), device=dev)
        context = f.get_tensor("context_ids").to(dev, torch.long) if "context_ids" in f.keys() else None
    mm_types = (ids == FLASH["ids"]["image_token_id"]).to(torch.int32)
    rss_before = vm_mib("VmRSS")
    t0 = time.perf_counter()
    model = AutoModelForImageTextToText.from_pretrained(a.model, dtype=dtype, device_map=a.device if cuda else None).eval()
    sync()
    res = {"device": torch.cuda.get_device_name(dev) if cuda else "cpu", "dtype": a.dtype, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "load_s": time.perf_counter() - t0, "prefill_tokens": ids.shape[1],
           "rss_before_mib": rss_before, "peak_rss_load_mib": vm_mib("VmHWM")}
    with torch.no_grad():
        for rep in range(2):  # the first prefill is the cold start's first answer (and warm-up: kernel selection, allocator)
            cache = DynamicCache(config=model.config)
            model.model.rope_deltas = None
            sync()
            t0 = time.perf_counter()
            out = model(input_ids=ids, pixel_values=pixels, image_grid_thw=grid, mm_token_type_ids=mm_types, cache=cache,
                        use_cache=True, logits_to_keep=1)
            tok = out.logits[0, -1].argmax().item()
            sync()
            res["first_prefill_s" if rep == 0 else "prefill_s"] = time.perf_counter() - t0
            if rep == 0:
                res["first_token_since_start_s"] = since_start_s()
        last = out.logits[0, -1].float()
        tok = last.argmax().view(1, 1)
        if a.decode_context and context is not None:  # decode after a text context of that length instead
            cache = DynamicCache(config=model.config)
            model.model.rope_deltas = None
            out = model(input_ids=context[:, :a.decode_context], cache=cache, use_cache=True, logits_to_keep=1)
            tok = out.logits[0, -1].argmax().view(1, 1)
        steps = []
        for _ in range(a.decode_steps):
            sync()
            t0 = time.perf_counter()
            out = model(input_ids=tok, cache=cache, use_cache=True, logits_to_keep=1)
            tok = out.logits[0, -1].argmax().view(1, 1)
            sync()
            steps.append(time.perf_counter() - t0)
    steps = sorted(steps[1:])
    res["decode_context"] = cache.get_seq_length() - len(steps) - 1
    res["decode_ms_median"] = steps[len(steps) // 2] * 1000
    res["decode_tokens_per_s"] = 1000 / res["decode_ms_median"]
    res["peak_rss_mib"] = vm_mib("VmHWM")
    if cuda:
        res["gpu_peak_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    if a.logits:
        save_file({"logits": last.cpu().contiguous()}, a.logits)
    print(json.dumps(res))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["make", "run"])
    p.add_argument("--out")
    p.add_argument("--model")
    p.add_argument("--text-layers", type=int, default=40)
    p.add_argument("--vision-blocks", type=int, default=24)
    p.add_argument("--image", type=int, default=1024)
    p.add_argument("--text-tokens", type=int, default=64)
    p.add_argument("--shard-size", default="4GB", help="make: save_pretrained's max_shard_size")
    p.add_argument("--context", type=int, default=1024, help="make: text tokens of context_ids (run --decode-context)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--decode-steps", type=int, default=16)
    p.add_argument("--logits")
    p.add_argument("--threads", type=int, default=0, help="run: torch.set_num_threads (default: torch's)")
    p.add_argument("--decode-context", type=int, default=0, help="run: decode after this many tokens of context_ids (default: after the image prefill)")
    a = p.parse_args()
    make(a) if a.mode == "make" else run(a)


if __name__ == "__main__":
    main()
