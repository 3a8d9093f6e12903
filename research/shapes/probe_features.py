# Linear probes on the vision tower's per-token features of the built-in model's images: can a linear map read a
# shape token's shape, its column half and its row half? Tells whether the tower hands the text model the fact a
# question needs. Tokens holding a shape and the shape are read off the pixels (shapes_patches.cells). Two thirds of
# the tokens train the probe, the rest are held out.
#   python research/shapes/probe_features.py MODEL_DIR DATA_DIR [--images 600]
# (DATA_DIR from make_shapes.ts; pixel values from shapes_patches.py, as torch_recipe.py)
import argparse, json
import numpy as np, torch
from transformers import AutoModelForImageTextToText
from shapes_patches import cells, patches
p = argparse.ArgumentParser()
p.add_argument('model'); p.add_argument('data'); p.add_argument('--images', type=int, default=600)
a = p.parse_args()
torch.manual_seed(0)
model = AutoModelForImageTextToText.from_pretrained(a.model, dtype=torch.float32)
X, shape, right, bottom = [], [], [], []
for line in list(open(f'{a.data}/train.jsonl'))[:a.images]:
    f = f"{a.data}/{json.loads(line)['messages'][0]['content'][0]['image']}"
    pv, g = patches(f)
    with torch.no_grad():
        feats = model.model.visual(pv, grid_thw=torch.tensor([g])).pooler_output  # [16, D], row-major 4 x 4 cells
    for t, cell in enumerate(cells(f)):
        if cell is None: continue
        row, col, s, _ = cell
        X.append(feats[t].numpy()); shape.append(s); right.append(int(col >= 2)); bottom.append(int(row >= 2))
X = torch.tensor(np.array(X)); n = len(X) * 2 // 3
Xn = (X - X[:n].mean(0)) / (X[:n].std(0) + 1e-6)
print(f'{len(X)} shape tokens from {a.images} images; feature rms {X.pow(2).mean().sqrt():.3f}')
for name, y, k in [('shape', shape, 3), ('right half', right, 2), ('bottom half', bottom, 2)]:
    y = torch.tensor(y); W = torch.zeros(X.shape[1], k, requires_grad=True); b = torch.zeros(k, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=1e-2)
    for _ in range(2000):
        loss = torch.nn.functional.cross_entropy(Xn[:n] @ W + b, y[:n]); opt.zero_grad(); loss.backward(); opt.step()
    acc = lambda s: ((Xn[s] @ W + b).argmax(1) == y[s]).float().mean().item()
    print(f'{name:12s} held-out {acc(slice(n, None)):.3f}  train {acc(slice(0, n)):.3f}')
