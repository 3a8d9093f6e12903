"""Checks that a tied model (spec/fixtures/tied/model, tie_word_embeddings true) fine-tuned and saved by
`glm46v finetune` is a tied checkpoint as transformers writes one, and that transformers computes our logits on it.

For each case it runs our finetune on the tied model (spec/fixtures/train/data/train.jsonl) and checks OUT/final:
no `lm_head.weight` in any weight file or index, config.json with tie_word_embeddings true at the top level, the
embedding changed by the training (so the check is not on the starting weights); then loads it with transformers
(no missing, unexpected or mismatched keys allowed), checks that lm_head.weight *is* embed_tokens.weight there, runs
the inputs of spec/fixtures/tied/forward_batch.safetensors, and compares with our logits for the same folder
(scripts/train/saved_logits.ts) on non-padding tokens: at most 1e-4. It writes spec/fixtures/tied/saved_logits.safetensors
(`logits:<case>`, transformers'; the finetune arguments, weight digests and differences in the metadata) and copies
each checkpoint's config and weights to spec/fixtures/tied/saved/<case>/ for spec/models/glm4v/tied.spec.ts.

Rerun (from the repository root, about a minute):
    /work/pyref/bin/python scripts/parity/check_tied_saved.py
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_saved import max_diff, transformers_logits, weights_digest  # noqa: E402
from common import FIXTURES, ROOT, write_reference  # noqa: E402

MODEL = FIXTURES / "tied" / "model"
INPUTS = FIXTURES / "tied" / "forward_batch.safetensors"
OUT = FIXTURES / "tied" / "saved_logits.safetensors"
DATA = "spec/fixtures/train/data/train.jsonl"
EMBED = "model.language_model.embed_tokens.weight"
CASES = {
    # full fine-tune (the tied matrix trains as one), F32, sharded (index + several files)
    "full_f32_sharded": ["--steps", "3", "--batch-size", "2", "--lr", "3e-3", "--weight-decay", "0.1", "--seed", "11",
                         "--shard-size", "300000"],
    # LoRA on the decoder's linears (lm_head cannot take one when tied), merged, stored as bfloat16
    "lora_merged_bf16": ["--steps", "3", "--batch-size", "2", "--lr", "2e-2", "--seed", "11", "--lora-rank", "4",
                         "--lora-alpha", "8", "--lora-targets", "q_proj,v_proj,gate_up_proj", "--save-dtype", "BF16"],
}


def saved_keys(ckpt: Path) -> set[str]:
    keys: set[str] = set()
    for f in ckpt.glob("model*.safetensors"):
        with safe_open(str(f), "pt") as st:
            keys |= set(st.keys())
    index = ckpt / "model.safetensors.index.json"
    if index.exists():
        assert set(json.loads(index.read_text())["weight_map"]) == keys, "index and files disagree"
    return keys


def embedding(ckpt: Path) -> torch.Tensor:
    for f in ckpt.glob("model*.safetensors"):
        with safe_open(str(f), "pt") as st:
            if EMBED in st.keys():
                return st.get_tensor(EMBED).float()
    raise SystemExit(f"{ckpt}: no {EMBED}")


def check_files(ckpt: Path) -> None:
    keys = saved_keys(ckpt)
    if "lm_head.weight" in keys or EMBED not in keys:
        raise SystemExit(f"{ckpt}: expected {EMBED} and no lm_head.weight, got {sorted(k for k in keys if 'embed' in k or 'lm_head' in k)}")
    config = json.loads((ckpt / "config.json").read_text())
    if config.get("tie_word_embeddings") is not True:
        raise SystemExit(f"{ckpt}/config.json: tie_word_embeddings is {config.get('tie_word_embeddings')!r}, not true")
    if torch.equal(embedding(ckpt), embedding(MODEL)):
        print(f"  note: {ckpt.parent.name} left the embedding unchanged")


def check_tied_in_transformers(ckpt: Path) -> None:
    from transformers import AutoModelForImageTextToText
    model = AutoModelForImageTextToText.from_pretrained(ckpt, dtype=torch.float32)
    if model.lm_head.weight is not model.model.language_model.embed_tokens.weight:
        raise SystemExit(f"{ckpt}: transformers loaded it untied")


def our_logits(ckpt: Path, work: Path) -> torch.Tensor:
    out = work / f"ours_{ckpt.parent.name}.safetensors"
    subprocess.run(["npx", "tsx", "scripts/train/saved_logits.ts", str(ckpt), str(INPUTS), str(out)], cwd=ROOT, check=True)
    return load_file(str(out))["logits"]


def main() -> None:
    ref = load_file(str(INPUTS))
    mask = ref["in:attention_mask"]
    tensors, digests, diffs = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="check_tied_saved_") as tmp:
        work = Path(tmp)
        for name, argv in CASES.items():
            out = work / name
            cmd = ["npx", "tsx", "cli/main.ts", "finetune", "--model", str(MODEL.relative_to(ROOT)), "--data", DATA,
                   "--out", str(out), *argv]
            subprocess.run(cmd, cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
            ckpt = out / "final"
            check_files(ckpt)
            check_tied_in_transformers(ckpt)
            theirs = transformers_logits(ckpt, ref)
            d = max_diff(theirs, our_logits(ckpt, work), mask)
            diffs[name] = f"{d:.3e}"
            print(f"{name}: files {sorted(p.name for p in ckpt.iterdir())}\n  tied in transformers, no lm_head.weight;"
                  f" max |transformers - ours| logits = {d:.3e}")
            tensors[f"logits:{name}"] = theirs
            digests[name] = weights_digest(ckpt)
            keep = FIXTURES / "tied" / "saved" / name
            shutil.rmtree(keep, ignore_errors=True)
            keep.mkdir(parents=True)
            for f in ckpt.iterdir():
                if f.name == "config.json" or f.name.startswith("model"):
                    shutil.copy(f, keep / f.name)
    write_reference(OUT, {"in:attention_mask": mask, **tensors}, MODEL, "glm46v",
                    "transformers' logits for tied checkpoints saved by glm46v finetune (see check_tied_saved.py)",
                    {"cases": json.dumps(CASES), "data": DATA, "inputs": "forward_batch.safetensors",
                     "weights_sha256": json.dumps(digests), "max_abs_diff_at_creation": json.dumps(diffs)})
    worst = max(float(v) for v in diffs.values())
    if worst > 1e-4:
        raise SystemExit(f"max diff {worst:.3e} exceeds 1e-4")


if __name__ == "__main__":
    main()
