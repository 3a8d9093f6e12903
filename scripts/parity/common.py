"""Shared pieces of the parity scripts: tiny random GLM-V models, forward hooks, reference-file writing.

Every reference runs in float32 on the CPU with fixed seeds. Every parameter of a tiny model is random
(norm weights 1 + 0.2 N(0,1), nonzero biases, fan-in-scaled weights), so a forgotten bias, a swapped
norm or a missing scale shows up as a mismatch. Reference files follow ../../shared/design/contracts.md:
`in:*`, `rope:*`, `out:<module path>`, `logits`, `loss`, `grad:<param>`, `gen:sequences`, `proc:*`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "spec" / "fixtures"


def seed_all(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Every parameter random, at a scale that keeps activations of order one."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        leaf = name.rsplit(".", 1)[-1]
        n = lambda: torch.randn(p.shape, generator=g, dtype=torch.float32)  # noqa: E731
        if leaf == "bias":
            p.copy_(0.1 * n())
        elif p.ndim == 1:  # RMSNorm / LayerNorm weights
            p.copy_(1.0 + 0.2 * n())
        elif "embed_tokens" in name or "position_embedding" in name:
            p.copy_(n())
        else:  # linear / conv weights [out, in, ...]: fan-in scaling
            fan_in = p[0].numel()
            p.copy_(n() / fan_in**0.5)


def save_model(model: torch.nn.Module, out_dir: Path) -> None:
    """HF layout (config.json + model.safetensors) in float32."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)


class Capture:
    """Forward hooks that record the output (first element of a tuple) of each named module as `out:<path>`."""

    def __init__(self, model: torch.nn.Module, paths: list[str]):
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = []
        modules = dict(model.named_modules())
        for p in paths:
            if p not in modules:
                raise KeyError(f"no module {p}")
            self.handles.append(modules[p].register_forward_hook(self._hook(p)))

    def _hook(self, path: str):
        def hook(_m, _inp, out):
            if isinstance(out, (tuple, list)):
                out = out[0]
            elif hasattr(out, "last_hidden_state"):
                out = out.last_hidden_state
            if f"out:{path}" in self.outputs:  # called more than once (e.g. per image): keep the first
                return
            self.outputs[f"out:{path}"] = out.detach().clone().float()
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def write_reference(path: Path, tensors: dict[str, torch.Tensor], model_dir: Path, model_type: str,
                    description: str, extra_meta: dict[str, str] | None = None) -> None:
    """Writes a reference file; floating tensors as F32, integer tensors as I64."""
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        out[k] = v.float() if v.is_floating_point() else v.long()
    meta = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "model_type": model_type,
        "description": description,
        "model": os.path.relpath(model_dir, path.parent),
    }
    meta.update(extra_meta or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(path), metadata=meta)
    size = path.stat().st_size
    print(f"wrote {path.relative_to(ROOT)} ({len(out)} tensors, {size / 1024:.0f} KiB)")


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
