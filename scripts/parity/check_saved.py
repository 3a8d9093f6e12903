"""Checks that checkpoints saved by `glm46v finetune` load in Python transformers and compute what ours compute.

For each case below it runs our finetune on tiny_a (spec/fixtures/train/data/train.jsonl), loads OUT/final with
transformers (no missing, unexpected or mismatched keys allowed), runs the inputs of
spec/fixtures/model/tiny_a_batch.safetensors (two left-padded prompts with images), gets our logits for the same
checkpoint (scripts/train/saved_logits.ts), prints the largest difference on non-padding tokens, and writes
spec/fixtures/train/saved_tiny_a.safetensors: `logits:<case>` (transformers) and, in the metadata, each case's
finetune arguments, and copies each checkpoint's config and weights to spec/fixtures/train/saved/<case>/.
spec/train/saved.spec.ts compares our logits on those weights with the file's, and replays the arguments to check
what finetune writes.

Rerun (from the repository root, about a minute):
    /work/pyref/bin/python scripts/parity/check_saved.py
Check one checkpoint of your own against ours (nothing is written):
    /work/pyref/bin/python scripts/parity/check_saved.py --checkpoint OUT/final
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FIXTURES, ROOT, write_reference  # noqa: E402
from tiny_models import ID, model_dir  # noqa: E402

INPUTS = FIXTURES / "model" / "tiny_a_batch.safetensors"
OUT = FIXTURES / "train" / "saved_tiny_a.safetensors"
DATA = "spec/fixtures/train/data/train.jsonl"
CASES = {
    # full fine-tune, F32, sharded (several model-0000i-of-0000n files + index)
    "full_f32_sharded": ["--steps", "4", "--batch-size", "2", "--lr", "3e-3", "--weight-decay", "0.1", "--seed", "11",
                         "--shard-size", "300000"],
    # LoRA on q/v/gate_up, merged into the saved weights, stored as bfloat16
    "lora_merged_bf16": ["--steps", "4", "--batch-size", "2", "--lr", "2e-2", "--seed", "11", "--lora-rank", "4",
                         "--lora-alpha", "8", "--lora-targets", "q_proj,v_proj,gate_up_proj", "--save-dtype", "BF16"],
}


def transformers_logits(ckpt: Path, ref: dict[str, torch.Tensor]) -> torch.Tensor:
    # float32 compute whatever the stored dtype, as ours (bf16 weights are widened on load on both sides)
    model, info = AutoModelForImageTextToText.from_pretrained(ckpt, dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise SystemExit(f"{ckpt}: transformers reports loading problems: {bad}")
    model.eval()
    ids, mask = ref["in:input_ids"], ref["in:attention_mask"]
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, pixel_values=ref["in:pixel_values"],
                    image_grid_thw=ref["in:image_grid_thw"],
                    mm_token_type_ids=(ids == ID["<|image|>"]).long() * mask)
    return out.logits.float()


def our_logits(ckpt: Path, work: Path) -> torch.Tensor:
    out = work / f"ours_{ckpt.parent.name}.safetensors"
    subprocess.run(["npx", "tsx", "scripts/train/saved_logits.ts", str(ckpt), str(INPUTS), str(out)], cwd=ROOT, check=True)
    return load_file(str(out))["logits"]


def max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    keep = mask.bool()[..., None].expand_as(a)
    return (a - b).abs()[keep].max().item()


def weights_digest(ckpt: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(ckpt.glob("model*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, help="compare this saved folder only; write nothing")
    args = ap.parse_args()
    ref = load_file(str(INPUTS))
    mask = ref["in:attention_mask"]
    with tempfile.TemporaryDirectory(prefix="check_saved_") as tmp:
        work = Path(tmp)
        if args.checkpoint:
            d = max_diff(transformers_logits(args.checkpoint, ref), our_logits(args.checkpoint, work), mask)
            print(f"{args.checkpoint}: max |transformers - ours| logits = {d:.3e}")
            raise SystemExit(0 if d <= 1e-4 else 1)
        tensors, digests, worst = {}, {}, 0.0
        for name, argv in CASES.items():
            out = work / name
            cmd = ["npx", "tsx", "cli/main.ts", "finetune", "--model", str(model_dir("tiny_a").relative_to(ROOT)),
                   "--data", DATA, "--out", str(out), *argv]
            subprocess.run(cmd, cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
            ckpt = out / "final"
            theirs = transformers_logits(ckpt, ref)
            d = max_diff(theirs, our_logits(ckpt, work), mask)
            worst = max(worst, d)
            print(f"{name}: files {sorted(p.name for p in ckpt.iterdir())}\n  max |transformers - ours| logits = {d:.3e}")
            tensors[f"logits:{name}"] = theirs
            digests[name] = weights_digest(ckpt)
            keep = ROOT / "spec/fixtures/train/saved" / name
            shutil.rmtree(keep, ignore_errors=True)
            keep.mkdir(parents=True)
            for f in ckpt.iterdir():
                if f.name == "config.json" or f.name.startswith("model"):
                    shutil.copy(f, keep / f.name)
        write_reference(OUT, {"in:attention_mask": mask, **tensors}, model_dir("tiny_a"), "glm4v",
                        "transformers' logits for checkpoints saved by glm46v finetune (see check_saved.py)",
                        {"cases": json.dumps(CASES), "data": DATA, "inputs": "../model/tiny_a_batch.safetensors",
                         "weights_sha256": json.dumps(digests), "max_abs_diff_at_creation": f"{worst:.3e}"})
        if worst > 1e-4:
            raise SystemExit(f"max diff {worst:.3e} exceeds 1e-4")


if __name__ == "__main__":
    main()
