# The built-in model's pixel values for an image file, as our processor makes them for a 112 x 112 image (no resize):
# CLIP-normalised, the frame doubled to the 2 temporal patches, 14 px patches in 2 x 2 merge order; and what each image
# token's 28 px cell holds, read off the pixels. Shared by the PyTorch scripts of research/shapes/.
import numpy as np, torch
from PIL import Image
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32); STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
def patches(f):
    """(pixel_values [gh * gw, 3 * 2 * 14 * 14], grid_thw [1, gh, gw]) of the image file f."""
    x = (np.asarray(Image.open(f).convert('RGB'), np.float32) / 255 - MEAN) / STD  # H W C
    H, W, _ = x.shape; P, m = 14, 2; gh, gw = H // P, W // P
    x = np.stack([x.transpose(2, 0, 1)] * 2)  # T C H W
    x = x.reshape(2, 3, gh // m, m, P, gw // m, m, P).transpose(2, 5, 3, 6, 1, 0, 4, 7).reshape(gh * gw, 3 * 2 * P * P)
    return torch.from_numpy(np.ascontiguousarray(x)), [1, gh, gw]

SHAPES, COLOURS = ['circle', 'square', 'triangle'], ['red', 'green', 'blue', 'yellow', 'purple']
BACKGROUND = np.array([123, 117, 104])
RGB = np.array([[220, 30, 30], [30, 160, 50], [30, 70, 220], [235, 205, 20], [140, 50, 180]])  # shapes_scene.ts
def cells(f):
    """Per image token of the file f (row-major 4 x 4 cells): None for background, else (row, col, shape, colour) as
    indices into SHAPES and COLOURS; the shape from how much of its bounding box it fills, the colour the nearest."""
    img = np.asarray(Image.open(f).convert('RGB')).astype(np.float32)
    out = []
    for t in range(16):
        row, col = divmod(t, 4)
        c = img[row * 28:(row + 1) * 28, col * 28:(col + 1) * 28]
        mask = np.abs(c - BACKGROUND).sum(-1) > 60
        if mask.sum() < 50:
            out.append(None)
            continue
        fill = mask.sum() / (mask.any(1).sum() * mask.any(0).sum())  # square ~1, circle ~0.79, triangle ~0.5
        out.append((row, col, 1 if fill > 0.9 else 0 if fill > 0.65 else 2, int(np.argmin(((c[mask].mean(0) - RGB) ** 2).sum(1)))))
    return out
