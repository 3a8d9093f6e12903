"""Checks that MoE checkpoints saved by `glm46v finetune` load in transformers and compute what ours compute
(check_saved.py's check), on both tiny MoE models: moe_a (glm4v_moe: experts saved per expert) and moe_b (glm46v with a
glm4v_moe_text text_config: experts saved fused, the only layout transformers loads for glm46v).

For each model and case it runs our finetune on spec/fixtures/models/<model> (spec/fixtures/train/data/train.jsonl),
loads OUT/final with transformers (no missing, unexpected or mismatched keys allowed), checks that
e_score_correction_bias (a buffer) is unchanged, bit for bit in BF16 saves too, and that the file's layout is what
transformers' own save_pretrained writes for that model (it loads the checkpoint in the saved dtype, saves it, and
compares every key, dtype and shape: fused or per-expert experts, the router and the bias kept F32 in BF16), runs the
inputs of the model's reference file, gets our logits for the same checkpoint (scripts/train/saved_logits.ts), and
prints the largest difference on non-padding tokens. It writes spec/fixtures/moe/saved/saved_<model>.safetensors
(`logits:<case>` from transformers, the finetune arguments, weight digests and the differences in the metadata) and
copies each checkpoint's config and weights to spec/fixtures/moe/saved/<model>/<case>/, for
spec/models/glm4v_moe/saved.spec.ts.

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

SAVED = FIXTURES / "moe" / "saved"
DATA = "spec/fixtures/train/data/train.jsonl"
# the reference file whose inputs each model's logits are compared on
INPUTS = {"moe_a": FIXTURES / "moe" / "moe_a_batch.safetensors",  # two left-padded prompts with images
          "moe_b": FIXTURES / "moe" / "moe_b_image.safetensors"}  # one prompt with an image
CASES = {
    # every weight trained (router and experts included), F32
    "full_f32": ["--steps", "4", "--batch-size", "2", "--lr", "3e-3", "--weight-decay", "0.1", "--seed", "11"],
    # LoRA on attention and on every expert projection (routed, shared and the dense layer's MLP), merged, BF16
    "lora_experts_bf16": ["--steps", "4", "--batch-size", "2", "--lr", "2e-2", "--seed", "11", "--lora-rank", "4",
                          "--lora-alpha", "8", "--lora-targets", "q_proj,v_proj,gate_proj,up_proj,down_proj",
                          "--save-dtype", "BF16"],
}


def header(ckpt: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """key -> (dtype, shape) of every tensor in the folder's safetensors files."""
    from safetensors import safe_open
    out = {}
    for f in sorted(ckpt.glob("model*.safetensors")):
        with safe_open(str(f), "pt") as h:
            out.update({k: (h.get_slice(k).get_dtype(), tuple(h.get_slice(k).get_shape())) for k in h.keys()})
    return out


def transformers_layout(ckpt: Path, dtype: torch.dtype, work: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """What transformers' save_pretrained writes for this checkpoint loaded in `dtype` (its own layout and dtypes)."""
    model = AutoModelForImageTextToText.from_pretrained(ckpt, dtype=dtype)
    out = work / f"resaved_{ckpt.parent.parent.name}_{ckpt.parent.name}"
    model.save_pretrained(out)
    return header(out)


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


def our_logits(ckpt: Path, inputs: Path, work: Path) -> torch.Tensor:
    out = work / f"ours_{ckpt.parent.parent.name}_{ckpt.parent.name}.safetensors"
    subprocess.run(["npx", "tsx", "scripts/train/saved_logits.ts", str(ckpt), str(inputs), str(out)], cwd=ROOT, check=True)
    return load_file(str(out))["logits"]


def check_model(name: str, work: Path) -> float:
    ref = load_file(str(INPUTS[name]))
    mask = ref["in:attention_mask"]
    keep = mask.bool()[..., None]
    base = AutoModelForImageTextToText.from_pretrained(model_dir(name), dtype=torch.float32)
    biases = {k: v for k, v in base.state_dict().items() if k.endswith("e_score_correction_bias")}
    tensors, digests, diffs = {}, {}, {}
    for case, argv in CASES.items():
        out = work / name / case
        cmd = ["npx", "tsx", "cli/main.ts", "finetune", "--model", str(model_dir(name).relative_to(ROOT)),
               "--data", DATA, "--out", str(out), *argv]
        subprocess.run(cmd, cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
        ckpt = out / "final"
        theirs, model = transformers_logits(ckpt, ref)
        sd = model.state_dict()
        for k, b in biases.items():  # a buffer: untrained, and kept float32 in a BF16 save as transformers does
            assert torch.equal(sd[k], b), f"{name}/{case}: {k} changed"
        layout = transformers_layout(ckpt, torch.bfloat16 if "BF16" in argv else torch.float32, work)
        ours = header(ckpt)
        assert ours == layout, f"{name}/{case}: layout differs from transformers' save: {set(ours.items()) ^ set(layout.items())}"
        d = (theirs - our_logits(ckpt, INPUTS[name], work)).abs().masked_select(keep.expand_as(theirs)).max().item()
        diffs[case] = f"{d:.3e}"
        fused = any(k.endswith("mlp.experts.gate_up_proj") for k in ours)
        f32 = sorted({k.split("layers.")[1].split(".", 1)[1] for k, (dt, _) in ours.items() if dt == "F32"}) if "BF16" in argv else []
        print(f"{name}/{case}: {'fused' if fused else 'per-expert'} experts, layout = transformers' save"
              f"{f', F32 in BF16: {f32}' if f32 else ''}\n  max |transformers - ours| logits = {d:.3e}")
        tensors[f"logits:{case}"] = theirs
        h = hashlib.sha256()
        for f in sorted(ckpt.glob("model*.safetensors")):
            h.update(f.read_bytes())
        digests[case] = h.hexdigest()
        dest = SAVED / name / case
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for f in ckpt.iterdir():
            if f.name == "config.json" or f.name.startswith("model"):
                shutil.copy(f, dest / f.name)
    worst = max(float(v) for v in diffs.values())
    write_reference(SAVED / f"saved_{name}.safetensors", {"in:attention_mask": mask, **tensors}, model_dir(name),
                    base.config.model_type,
                    f"transformers' logits for {name} checkpoints saved by glm46v finetune (check_saved_moe.py)",
                    {"cases": json.dumps(CASES), "data": DATA, "inputs": f"../{INPUTS[name].name}",
                     "weights_sha256": json.dumps(digests), "max_abs_diff": json.dumps(diffs),
                     "max_abs_diff_at_creation": f"{worst:.3e}", "layout": "as transformers' save_pretrained writes it"})
    return worst


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="check_saved_moe_") as tmp:
        worst = max(check_model(name, Path(tmp)) for name in INPUTS)
    if worst > 1e-4:
        raise SystemExit(f"max diff {worst:.3e} exceeds 1e-4")


if __name__ == "__main__":
    main()
