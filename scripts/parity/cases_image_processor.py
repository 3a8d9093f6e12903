"""Reference cases for the GLM-V image processor (processors/image_processor.ts): raw files -> pixel_values.

Makes the small committed test images under spec/fixtures/images/ (PIL/numpy, fixed seeds) and, per case, one
spec/fixtures/image_processor/<case>.safetensors with `proc:pixel_values` [N, 1176] and `proc:image_grid_thw`
[n, 3], metadata `images` (JSON list of file names relative to the reference file) and `preprocessor_config`.

The reference is what transformers 5.24 gives by default: `AutoImageProcessor.from_pretrained(dir)` builds the
torchvision class (`Glm4vImageProcessor` / `Glm46VImageProcessor`, uint8 antialiased bicubic resize, fused
rescale+normalize in float32), fed the way it treats a file name (`load_image_as_tensor`: torchvision
`decode_image(mode=RGB)` with the EXIF orientation applied; alpha and tRNS are dropped, not composited), which
`check_file_name_path` asserts. 16-bit PNGs come out of torchvision as uint16, which that path then treats as
8-bit (values up to ~980 after normalization), so for them the reference is PIL's `convert("RGB")` (RGB16 keeps
the high byte; 16-bit gray "I;16" clips at 255). Arrays are handed over, not PIL images: with a PIL image the
processor composites alpha, and even a palette tRNS colour that `convert("RGB")` carried into `info`, on white.
"""
from __future__ import annotations

import io
import json
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import transformers
from safetensors.torch import save_file
from torchvision.transforms.v2 import functional as tvF
from transformers import AutoImageProcessor
from transformers.image_utils import load_image, load_image_as_tensor
from transformers.models.glm4v.image_processing_glm4v import smart_resize

from common import FIXTURES, write_reference

IMAGES = FIXTURES / "images"
OUT = FIXTURES / "image_processor"
GLM41V_CONFIG_DIR = FIXTURES / "glm-configs" / "GLM-4.1V-9B-Thinking"  # byte-exact checkpoint file
# Small pixel budgets keep the reference files small: 2*h*w in [3136, 6272] -> 8 to 16 patches per image.
SMALL = {"image_processor_type": "Glm46VImageProcessor", "size": {"shortest_edge": 3136, "longest_edge": 6272}}
NO_NORMALIZE = {**SMALL, "image_processor_type": "Glm4vImageProcessor", "do_normalize": False}


def smooth_rgb(h: int, w: int, seed: int, noise: float) -> np.ndarray:
    """Photo-like: smooth colour gradients plus Gaussian noise, uint8 [h, w, 3]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    ph = rng.uniform(0, 6.28, 3)
    r = 128 + 100 * np.sin(x / (w / 6.0) + ph[0]) * np.cos(y / (h / 4.0))
    g = 40 + 170 * (x / w) * (0.6 + 0.4 * np.sin(y / 9.0 + ph[1]))
    b = 210 - 160 * (y / h) + 30 * np.cos((x + y) / 11.0 + ph[2])
    img = np.stack([r, g, b], -1) + rng.normal(0, noise, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def png_raw(path: Path, arr: np.ndarray, bit_depth: int, color_type: int) -> None:
    """A plain PNG writer for what PIL cannot write (16-bit RGB): big-endian samples, filter 0 on every row."""
    h, w = arr.shape[:2]
    dt = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + arr[y].astype(dt).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def make_images() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    # Baseline 4:2:0 JPEG, sizes not multiples of the 16-pixel MCU.
    PIL.Image.fromarray(smooth_rgb(118, 157, 1, 10)).save(IMAGES / "photo.jpg", quality=90)
    PIL.Image.fromarray(smooth_rgb(90, 120, 2, 8)).save(IMAGES / "progressive.jpg", quality=85, progressive=True)
    # 4:2:2 (h2v1 chroma), 1000x60: the max_pixels branch clamps the height to one factor.
    PIL.Image.fromarray(smooth_rgb(60, 1000, 3, 4)).save(IMAGES / "wide.jpg", quality=80, subsampling=1)
    # Grayscale JPEG stored 48x32 with EXIF orientation 6: upright it is 32 wide, 48 high.
    gray = smooth_rgb(32, 48, 4, 6)[..., 1]
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    PIL.Image.fromarray(gray, "L").save(IMAGES / "oriented.jpg", quality=90, exif=exif.tobytes())

    rng = np.random.default_rng(5)
    rgba = np.concatenate([smooth_rgb(48, 64, 6, 6), rng.integers(0, 256, (48, 64, 1), dtype=np.uint8)], -1)
    rgba[:8, :8, 3] = 0  # fully transparent corner whose colour must survive (alpha is dropped)
    PIL.Image.fromarray(rgba, "RGBA").save(IMAGES / "alpha.png")
    la = np.stack([smooth_rgb(30, 36, 7, 6)[..., 0], rng.integers(0, 256, (30, 36), dtype=np.uint8)], -1)
    PIL.Image.fromarray(la, "LA").save(IMAGES / "gray_alpha.png")
    PIL.Image.fromarray(smooth_rgb(56, 40, 8, 5)[..., 2], "L").save(IMAGES / "gray.png")
    pal = PIL.Image.fromarray(smooth_rgb(70, 42, 9, 3)).quantize(colors=24, method=PIL.Image.Quantize.MEDIANCUT, dither=PIL.Image.Dither.NONE)
    pal.save(IMAGES / "palette.png", transparency=5)  # tRNS on one palette entry: dropped like any alpha
    PIL.Image.fromarray(smooth_rgb(30, 20, 10, 6)).save(IMAGES / "tiny.png")
    # 16-bit RGB, 84x28: already a multiple of 28 inside the budget, so no resize at all.
    rgb16 = smooth_rgb(28, 84, 11, 0).astype(np.uint16) * 257 + rng.integers(0, 257, (28, 84, 3)).astype(np.uint16)
    png_raw(IMAGES / "rgb16.png", rgb16, 16, 2)
    # 16-bit gray with values around 255: PIL's I;16 -> RGB conversion clips at 255 rather than scaling.
    g16 = (smooth_rgb(26, 30, 12, 0)[..., 0].astype(np.uint16) * 2 + rng.integers(0, 40, (26, 30))).astype(np.uint16)
    png_raw(IMAGES / "gray16.png", g16, 16, 0)


CASES = {
    # name: (config dir or dict, image files)
    "glm41v_config": (GLM41V_CONFIG_DIR, ["tiny.png"]),
    "small_batch": (SMALL, ["photo.jpg", "progressive.jpg", "wide.jpg", "oriented.jpg", "alpha.png",
                            "gray_alpha.png", "gray.png", "palette.png", "tiny.png", "rgb16.png", "gray16.png"]),
    "no_normalize": (NO_NORMALIZE, ["gray.png", "palette.png"]),
}


def decode_reference(path: Path) -> np.ndarray:
    """HWC uint8 RGB as the reference reads the file (see the module docstring)."""
    if path.name.endswith("16.png"):
        return np.array(load_image(str(path)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_image_as_tensor(str(path)).permute(1, 2, 0).numpy()


def check_file_name_path(proc, path: Path) -> None:
    """An 8-bit file given by name to the processor gives the same pixel_values as our decoded array."""
    if path.name.endswith("16.png"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_name = proc(images=[str(path)], return_tensors="pt")["pixel_values"]
    by_array = proc(images=[decode_reference(path)], return_tensors="pt")["pixel_values"]
    assert torch.equal(by_name, by_array), f"{path.name}: file-name path differs from the decoded array"


# (num_frames, height, width, temporal_factor, factor, min_pixels, max_pixels)
SMART_RESIZE = [
    (2, 448, 448, 2, 28, 12544, 9633792),          # already fine
    (2, 70, 42, 2, 28, 3136, 6272),                # 70/28 = 2.5 and 42/28 = 1.5: both round to 2
    (2, 98, 126, 2, 28, 3136, 9633792),            # 3.5 -> 4, 4.5 -> 4
    (2, 30, 20, 2, 28, 12544, 9633792),            # width < 28: int() scale-up, then min_pixels
    (2, 30, 20, 2, 28, 3136, 6272),                # the same scale-up inside a small budget
    (2, 10, 10, 2, 28, 12544, 9633792),
    (2, 27, 500, 2, 28, 12544, 9633792),
    (2, 60, 1000, 2, 28, 3136, 6272),              # max_pixels: height floors to 0, clamped to one factor
    (2, 3000, 4000, 2, 28, 12544, 9633792),        # max_pixels on a 12 MP photo
    (2, 1000, 1000, 2, 28, 12544, 9633792),
    (2, 56, 56, 2, 28, 12544, 9633792),            # min_pixels (ceil)
    (2, 28, 5600, 2, 28, 12544, 9633792),          # aspect ratio exactly 200: allowed
    (2, 28, 5629, 2, 28, 12544, 9633792),          # 201.03: error
    (2, 10, 3000, 2, 28, 12544, 9633792),          # 300 after the scale-up: error
    (1, 448, 448, 2, 28, 12544, 9633792),          # too few frames: error
    (8, 480, 640, 2, 28, 12544, 47040000),         # a video: t_bar 8
    (3, 480, 640, 2, 28, 12544, 9633792),          # odd frame count: t_bar round(1.5) = 2
    (16, 720, 1280, 2, 28, 12544, 2 * 28 * 28 * 300),  # video over budget: beta uses num_frames
    (2, 200, 300, 2, 32, 1024, 16384),             # another factor
]

# Antialiased bicubic resize on noise (noise stresses the uint8 clamping between passes): (h, w, out_h, out_w).
RESIZES = [(17, 23, 9, 40), (30, 20, 56, 28), (64, 48, 13, 7), (25, 31, 25, 90), (40, 33, 5, 33), (3, 2, 28, 28)]


def smart_resize_table() -> list[dict]:
    rows = []
    for args in SMART_RESIZE:
        try:
            rows.append({"args": list(args), "result": list(smart_resize(*args))})
        except ValueError as e:
            rows.append({"args": list(args), "error": str(e)})
    return rows


def resize_reference() -> None:
    rng = np.random.default_rng(20)
    tensors, meta = {}, []
    for i, (h, w, oh, ow) in enumerate(RESIZES):
        src = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
        out = tvF.resize(src, [oh, ow], interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)
        tensors[f"proc:resize_in:{i}"] = src.permute(1, 2, 0).contiguous()  # HWC uint8
        tensors[f"proc:resize_out:{i}"] = out.permute(1, 2, 0).contiguous()
        meta.append([h, w, oh, ow])
    path = OUT / "resize.safetensors"
    # Kept as U8 (write_reference would widen them to I64); the contract's metadata fields are all there.
    save_file(tensors, str(path), metadata={
        "transformers_version": transformers.__version__, "torch_version": torch.__version__, "model_type": "glm4v",
        "model": ".", "cases": json.dumps(meta),
        "description": "torchvision resize(uint8, BICUBIC, antialias=True) of random noise; HWC in and out"})
    print(f"wrote {path.relative_to(FIXTURES.parents[1])} ({path.stat().st_size / 1024:.0f} KiB)")


def main() -> None:
    make_images()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "smart_resize_cases.json").write_text(json.dumps(smart_resize_table(), indent=1) + "\n")
    resize_reference()
    for name, (config, files) in CASES.items():
        case_dir = OUT / name
        if isinstance(config, dict):
            case_dir.mkdir(parents=True, exist_ok=True)
            (case_dir / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")
            config_dir = case_dir
        else:
            config_dir = config
        proc = AutoImageProcessor.from_pretrained(str(config_dir))
        paths = [IMAGES / f for f in files]
        out = proc(images=[decode_reference(p) for p in paths], return_tensors="pt")
        for p in paths:
            check_file_name_path(proc, p)
        grids = out["image_grid_thw"]
        print(f"  {name}: {type(proc).__name__} ({proc.backend}); grids {grids.tolist()}")
        write_reference(
            OUT / f"{name}.safetensors",
            {"proc:pixel_values": out["pixel_values"], "proc:image_grid_thw": grids},
            model_dir=config_dir,
            model_type="glm4v",
            description=f"image processor {type(proc).__name__} on {len(files)} files",
            extra_meta={
                "images": json.dumps([f"../images/{f}" for f in files]),
                "preprocessor_config": (config_dir / "preprocessor_config.json").read_text(),
                "image_processor_class": type(proc).__name__,
            },
        )


if __name__ == "__main__":
    main()
