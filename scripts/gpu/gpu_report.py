"""Collects scripts/gpu/gpu_run.sh's results (WORK dir) into OUT/summary.md (the tables for docs/gpu.md) and
OUT/results.json. Usage: python gpu_report.py WORK OUT SECONDS"""
from __future__ import annotations

import glob
import json
import os
import statistics
import sys


def load(path: str):
    """A JSON file, or the last line of a program's output that is one; None when there is none."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return json.loads(text.splitlines()[-1]) if text else None
    except ValueError:
        return None


def med(r, key):
    v = (r or {}).get(key)
    if isinstance(v, list) and v:
        return statistics.median(v)
    return v if isinstance(v, (int, float)) else None


def fmt(x, unit=""):
    return "-" if x is None else (f"{x:.3g}{unit}" if abs(x) < 100 else f"{x:.0f}{unit}")


def main() -> None:
    work, out, seconds = sys.argv[1], sys.argv[2], sys.argv[3]
    md, res = [], {"seconds": int(seconds)}
    ad = load(f"{work}/adapter.json")
    res["adapter"] = ad
    if ad:
        lim = ad.get("limits", {})
        md += [f"**WebGPU adapter:** {ad['adapter']['description']} (software: {ad['adapter']['software']})", "",
               "device limits: " + ", ".join(f"{k} {lim.get(k)}" for k in
                                              ["maxStorageBufferBindingSize", "maxBufferSize", "maxComputeWorkgroupStorageSize",
                                               "maxComputeInvocationsPerWorkgroup", "maxStorageBuffersPerShaderStage"]), ""]
    parity = []
    for f in sorted(glob.glob(f"{work}/parity_*.txt")):
        lines = [l for l in open(f).read().splitlines() if l.startswith("parity:")]
        parity.append((os.path.basename(f)[7:-4], lines[-1] if lines else "no parity line (see log.txt)"))
    res["parity"] = parity
    if parity:
        md += ["| reference file | parity on webgpu (atol 1e-4, as on the CPU) |", "| --- | --- |"]
        md += [f"| {n} | {l} |" for n, l in parity] + [""]
    ours, t32, t16 = (load(f"{work}/{n}.json") for n in ["bench_webgpu", "bench_torch_float32", "bench_torch_bfloat16"])
    ours_raw = next(iter(((ours or {}).get("raw", {}).get("ours") or {}).values()), {})
    res["bench"] = {"webgpu": ours_raw, "torch_float32": t32, "torch_bfloat16": t16}
    rows = [("matmul 512x1024x2816", "matmul"), ("vision (1024 patches)", "vision"), ("prefill (512 tokens)", "prefill"),
            ("decode @128 (ms/token)", "decode128"), ("decode @1024 (ms/token)", "decode1024"), ("training step", "train")]
    md += ["| bench row (median ms) | ours, webgpu f32 | PyTorch f32 | PyTorch bf16 | ours / PyTorch f32 |", "| --- | ---: | ---: | ---: | ---: |"]
    for label, key in rows:
        o, a, b = med(ours_raw, f"{key}_ms"), med(t32, f"{key}_ms"), med(t16, f"{key}_ms")
        if o is None and a is None and b is None:
            continue
        md.append(f"| {label} | {fmt(o)} | {fmt(a)} | {fmt(b)} | {fmt(o / a if o and a else None, 'x')} |")
    md.append("")
    fl = {n: load(f"{work}/flash_{n}.json") for n in ["make", "webgpu", "torch_float32", "torch_bfloat16"]}
    res["flash"] = fl
    mk = fl["make"] or {}
    md += [f"Full-size model: {mk.get('params', '?')} parameters, prefill {mk.get('prefill_tokens', '?')} tokens "
           f"({mk.get('patches', '?')} image patches), random weights made in {fmt(mk.get('make_s'), ' s')}", "",
           "| full-size row | ours, webgpu f32 | PyTorch f32 | PyTorch bf16 |", "| --- | ---: | ---: | ---: |"]
    w, a, b = fl["webgpu"] or {}, fl["torch_float32"] or {}, fl["torch_bfloat16"] or {}
    gib = lambda m: None if m is None else m / 1024  # noqa: E731
    md += [f"| load (s) | {fmt(w.get('load_s'))} | {fmt(a.get('load_s'))} | {fmt(b.get('load_s'))} |",
           f"| GPU memory (GiB; ours nvidia-smi, PyTorch peak allocated) | {fmt(gib(w.get('gpu_mib')))} | {fmt(a.get('gpu_peak_gib'))} | {fmt(b.get('gpu_peak_gib'))} |",
           f"| first prefill, weights upload + shaders (s) | {fmt(w.get('first_prefill_s'))} | - | - |",
           f"| prefill (s) | {fmt(w.get('prefill_s'))} | {fmt(a.get('prefill_s'))} | {fmt(b.get('prefill_s'))} |",
           f"| decode at context {w.get('decode_context', a.get('decode_context', '?'))} (tokens/s) | {fmt(w.get('decode_tokens_per_s'))} | {fmt(a.get('decode_tokens_per_s'))} | {fmt(b.get('decode_tokens_per_s'))} |", ""]
    if "logits_max_abs_diff" in w:
        md.append(f"last-token logits, ours vs PyTorch float32: max |diff| {w['logits_max_abs_diff']:.3e} (max |logit| {w['logits_max_abs_ref']:.3g}); "
                  f"argmax ours {w['argmax_ours']}, PyTorch {w['argmax_torch']}")
        md.append("")
    stages = open(f"{work}/stages.txt").read().strip().splitlines() if os.path.exists(f"{work}/stages.txt") else []
    res["stages"] = stages
    md += ["stages: " + "; ".join(stages), "", f"whole run: {seconds} s"]
    with open(f"{out}/summary.md", "w") as f:
        f.write("\n".join(md) + "\n")
    with open(f"{out}/results.json", "w") as f:
        json.dump(res, f, indent=1)
    print("\n".join(md))


if __name__ == "__main__":
    main()
