"""PyTorch + transformers side of scripts/bench/bench.ts: the same model folder, inputs and rows, on the CPU.

Usage (bench.ts runs it; by hand for a check):
  python scripts/bench/bench_torch.py load --model out/bench_model [--threads 2]   (then the cold start's first answer)
  python scripts/bench/bench_torch.py run --model out/bench_model [--threads 2] [--warmup 1] [--runs 5]
      [--decode-steps 16] [--train-steps 3] [--rows vision,prefill,decode,train,matmul] [--device cuda] [--dtype bfloat16]
--device/--dtype (default cpu/float32) run the same rows on a GPU or in bf16 (scripts/gpu/gpu_run.sh): every timed
run then ends with torch.cuda.synchronize(), so a row's time includes its kernels.
Prints one JSON line (wall-clock and process CPU times in ms of each run after --warmup) as its last line of output.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time


def vm_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def since_start_ms() -> float:
    """Milliseconds since this process started (/proc: the clock scripts/bench/compiled_rows.js reads for ours)."""
    import os
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return (uptime - start_ticks / os.sysconf("SC_CLK_TCK")) * 1000


def load_row(model_dir: str, threads: int) -> dict:
    """Peak resident memory and time to load the sharded bf16 checkpoint as float32, in this fresh process; then
    the first answer (the prefill row's 512-token prompt and its first token) and the time since the process started:
    the cold start of a CLI user."""
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForImageTextToText, DynamicCache
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.set_num_threads(threads)
    before = vm_kib("VmRSS")
    t0 = time.perf_counter()
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)  # glm4v, or glm4v_moe (--moe)
    ms = (time.perf_counter() - t0) * 1000
    n = sum(p.numel() for p in model.parameters())
    res = {"load_ms": ms, "rss_before_mib": before / 1024, "peak_rss_mib": vm_kib("VmHWM") / 1024,
           "rss_after_mib": vm_kib("VmRSS") / 1024, "params": n}
    with safe_open(f"{model_dir}/inputs.safetensors", "pt") as f:
        ids = f.get_tensor("prefill.input_ids").to(torch.long)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model(input_ids=ids, cache=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1)
        res["first_token"] = out.logits[0, -1].argmax().item()
    res["first_prefill_ms"] = (time.perf_counter() - t0) * 1000
    res["first_token_since_start_ms"] = since_start_ms()
    return res


SYNC = lambda: None  # noqa: E731  (torch.cuda.synchronize on a GPU: set by run_rows)


def timed(fn, warmup: int, runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU time (all threads) of each run, in ms."""
    for _ in range(warmup):
        fn()
    SYNC()
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        SYNC()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu


def put(res: dict, name: str, t: tuple[list[float], list[float]]) -> None:
    res[f"{name}_ms"], res[f"{name}_cpu_ms"] = t


def run_rows(args) -> dict:
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForImageTextToText, DynamicCache
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with safe_open(f"{args.model}/inputs.safetensors", "pt") as f:
        inp = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    global SYNC
    dev, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if dev.type == "cuda":
        SYNC = torch.cuda.synchronize
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32, as ours
        torch.backends.cudnn.allow_tf32 = False
    inp = {k: (v.to(dev, dtype) if v.is_floating_point() else v.to(dev)) for k, v in inp.items()}
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=dtype).to(dev)
    model.eval()
    rows = set(args.rows.split(","))
    import transformers
    res: dict = {"device": str(dev), "dtype": args.dtype, "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
                 "attn_implementation": model.config._attn_implementation}
    long = lambda t: t.to(torch.long)  # noqa: E731

    if "matmul" in rows:
        M, K, N = (int(x) for x in args.matmul.split(","))
        a, b = torch.randn(M, K, device=dev, dtype=dtype), torch.randn(K, N, device=dev, dtype=dtype)
        put(res, "matmul", timed(lambda: torch.mm(a, b), 2, max(args.runs, 5)))
        w = torch.randn(N, K, device=dev, dtype=dtype)  # the form every nn.Linear takes: weight [out, in]
        put(res, "matmul_linear", timed(lambda: torch.nn.functional.linear(a, w), 2, max(args.runs, 5)))

    with torch.no_grad():
        if "vision" in rows:
            pv = inp["vision.pixel_values"]
            grid = torch.tensor(json.loads(meta["vision_grid_thw"]), device=dev)
            put(res, "vision", timed(lambda: model.model.get_image_features(pv, grid), args.warmup, args.runs))

        if "prefill" in rows:
            ids = long(inp["prefill.input_ids"])
            last = {}

            def prefill():
                out = model(input_ids=ids, cache=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1)
                last["logits"] = out.logits[0, -1]
            put(res, "prefill", timed(prefill, args.warmup, args.runs))
            res["prefill_last_logits"] = last["logits"].float().tolist()

        if "long" in rows:  # the longest decode context as one prompt, as ours.ts
            n = max(int(c) for c in args.contexts.split(","))
            ids = long(inp["decode.context_ids"])[:, :n]
            put(res, "prefill_long", timed(lambda: model(input_ids=ids, cache=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1),
                                           args.warmup, min(args.runs, 3)))

        if "decode" in rows:
            # every context prefilled, then their decode steps alternate (same machine load for all, as ours.ts)
            ctx_all, toks = long(inp["decode.context_ids"]), long(inp["decode.tokens"])
            contexts = [int(c) for c in args.contexts.split(",")]
            times = {}
            for rep in range(args.warmup + 1):
                caches = []
                for ctx in contexts:
                    cache = DynamicCache(config=model.config)
                    model.model.rope_deltas = None  # text only: 0 for every context
                    model(input_ids=ctx_all[:, :ctx], cache=cache, use_cache=True, logits_to_keep=1)
                    caches.append(cache)
                steps = {ctx: ([], []) for ctx in contexts}
                for s in range(args.decode_steps):
                    for ctx, cache in zip(contexts, caches):
                        SYNC()
                        t0, c0 = time.perf_counter(), time.process_time()
                        model(input_ids=toks[:, s:s + 1], cache=cache, use_cache=True, logits_to_keep=1)
                        SYNC()
                        steps[ctx][0].append((time.perf_counter() - t0) * 1000)
                        steps[ctx][1].append((time.process_time() - c0) * 1000)
                if rep == args.warmup:
                    times = {ctx: (w[1:], c[1:]) for ctx, (w, c) in steps.items()}  # the first step after a prefill is warm-up too
            for ctx in contexts:
                put(res, f"decode{ctx}", times[ctx])

    if "train" in rows:
        model.train()
        ids, labels = long(inp["train.input_ids"]), long(inp["train.labels"])
        pv = inp["train.pixel_values"]
        grid = torch.tensor(json.loads(meta["train_grid_thw"]), device=dev)
        mm_types = (ids == int(meta["image_token_id"])).to(torch.int32)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        losses = []

        def step():
            model.model.rope_deltas = None
            out = model(input_ids=ids, labels=labels, pixel_values=pv, image_grid_thw=grid, mm_token_type_ids=mm_types)
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(out.loss.item())
        put(res, "train", timed(step, 1, args.train_steps))
        res["train_losses"] = losses
    res["peak_rss_mib"] = vm_kib("VmHWM") / 1024
    if dev.type == "cuda":
        res["cuda_peak_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return res


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["load", "run"])
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--decode-steps", type=int, default=16)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--contexts", default="128,1024,4096")
    p.add_argument("--matmul", default="512,1024,2816")
    p.add_argument("--rows", default="matmul,vision,prefill,long,decode,train")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = p.parse_args()
    res = load_row(args.model, args.threads) if args.mode == "load" else run_rows(args)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
