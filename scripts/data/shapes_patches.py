# The built-in model's pixel values for an image file, as our processor makes them for a 112 x 112 image (no resize):
# CLIP-normalised, the frame doubled to the 2 temporal patches, 14 px patches in 2 x 2 merge order. Shared by
# torch_recipe.py and probe_features.py.
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
