"""Checks that MoE checkpoints saved by `glm46v finetune` load in transformers and compute what ours compute
(check_saved.py's check, on the glm4v_moe tiny model moe_a).

For each case it runs our finetune on spec/fixtures/models/moe_a (spec/fixtures/train/data/train.jsonl), loads
OUT/final with transformers (no missing, unexpected or mismatched keys allowed), checks that e_score_correction_bias
(a buffer) is unchanged, runs the inputs of spec/fixtures/moe/moe_a_batch.safetensors (two left-padded prompts with
images), gets our logits for the same checkpoint (scripts/train/saved_logits.ts), and prints the largest difference on
non-padding tokens. It writes spec/fixtures/moe/saved/saved_moe_a.safetensors (`logits:<case>` from transformers, the
finetune arguments and weight digests in the metadata) and copies each checkpoint's config and weights to
spec/fixtures/moe/saved/<case>/, for spec/models/glm4v_moe/saved.spec.ts.

Rerun (from the repository root): /work/pyref/bin/python scripts/parity/check_saved_moe.py
"""
from __future__ import annotations

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
from tiny_models import ID  # noqa: E402
from tiny_moe import model_dir  # noqa: E402

INPUTS = FIXTURES / "moe" / "moe_a_batch.safetensors"
SAVED = FIXTURES / "moe" / "saved"
DATA = "spec/fixtures/train/data/train.jsonl"
CASES = {
    # every weight trained (router and experts included), F32
    "full_f32": ["--steps", "4", "--batch-size", "2", "--lr", "3e-3", "--weight-decay", "0.1", "--seed", "11"],
    # LoRA on attention and on every expert projection (routed, shared and the dense layer's MLP), merged, BF16
    "lora_experts_bf16": ["--steps", "4", "--batch-size", "2", "--lr", "2e-2", "--seed", "11", "--lora-rank", "4",
                          "--lora-alpha", "8", "--lora-targets", "q_proj,v_proj,gate_proj,up_proj,down_proj",
                          "--save-dtype", "BF16"],
}


def transformers_logits(ckpt: Path, ref: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.nn.Module]:
    model, info = AutoModelForImageTextToText.from_pretrained(ckpt, dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise SystemExit(f"{ckpt}: transformers reports loading problems: {bad}")
    model.eval()
    ids, mask = ref["in:input_ids"], ref["in:attention_mask"]
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, pixel_values=ref["in:pixel_values"],
                    image_grid_thw=ref["in:image_grid_thw"], mm_token_type_ids=(ids == ID["<|image|>"]).long() * mask)
    return out.logits.float(), model


def our_logits(ckpt: Path, work: Path) -> torch.Tensor:
    out = work / f"ours_{ckpt.parent.name}.safetensors"
    subprocess.run(["npx", "tsx", "scripts/train/saved_logits.ts", str(ckpt), str(INPUTS), str(out)], cwd=ROOT, check=True)
    return load_file(str(out))["logits"]


def main() -> None:
    ref = load_file(str(INPUTS))
    mask = ref["in:attention_mask"]
    keep = mask.bool()[..., None]
    base = AutoModelForImageTextToText.from_pretrained(model_dir("moe_a"), dtype=torch.float32)
    biases = {k: v for k, v in base.state_dict().items() if k.endswith("e_score_correction_bias")}
    tensors, digests, worst = {}, {}, 0.0
    with tempfile.TemporaryDirectory(prefix="check_saved_moe_") as tmp:
        work = Path(tmp)
        for name, argv in CASES.items():
            out = work / name
            cmd = ["npx", "tsx", "cli/main.ts", "finetune", "--model", str(model_dir("moe_a").relative_to(ROOT)),
                   "--data", DATA, "--out", str(out), *argv]
            subprocess.run(cmd, cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
            ckpt = out / "final"
            theirs, model = transformers_logits(ckpt, ref)
            sd = model.state_dict()
            bf16 = "BF16" in argv  # a BF16 save rounds the buffer too (transformers would keep it float32)
            for k, b in biases.items():
                assert torch.equal(sd[k], b.bfloat16().float() if bf16 else b), f"{name}: {k} changed in training"
            d = (theirs - our_logits(ckpt, work)).abs().masked_select(keep.expand_as(theirs)).max().item()
            worst = max(worst, d)
            print(f"{name}: files {sorted(p.name for p in ckpt.iterdir())}\n  max |transformers - ours| logits = {d:.3e}")
            tensors[f"logits:{name}"] = theirs
            h = hashlib.sha256()
            for f in sorted(ckpt.glob("model*.safetensors")):
                h.update(f.read_bytes())
            digests[name] = h.hexdigest()
            dest = SAVED / name
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for f in ckpt.iterdir():
                if f.name == "config.json" or f.name.startswith("model"):
                    shutil.copy(f, dest / f.name)
    write_reference(SAVED / "saved_moe_a.safetensors", {"in:attention_mask": mask, **tensors}, model_dir("moe_a"),
                    "glm4v_moe", "transformers' logits for MoE checkpoints saved by glm46v finetune (check_saved_moe.py)",
                    {"cases": json.dumps(CASES), "data": DATA, "inputs": "../moe_a_batch.safetensors",
                     "weights_sha256": json.dumps(digests), "max_abs_diff_at_creation": f"{worst:.3e}"})
    if worst > 1e-4:
        raise SystemExit(f"max diff {worst:.3e} exceeds 1e-4")


if __name__ == "__main__":
    main()
