# How far apart the vision tower's per-token features put the classes a question must tell apart: for each shape x
# colour (read off the pixels, shapes_patches.cells) and the background, the mean of the RMS-normalised features
# (what the text model's first norm hands on), the between- and within-class variance, and the cosine between the
# class means of two shapes of one colour.
#   python research/shapes/feature_geometry.py MODEL_DIR DATA_DIR [--pos-scale X]
# (DATA_DIR from make_shapes.ts; the first 400 training images; --pos-scale scales the position embedding first)
import argparse, json
import numpy as np, torch
from transformers import AutoModelForImageTextToText
from shapes_patches import COLOURS, SHAPES, cells, patches
p = argparse.ArgumentParser()
p.add_argument('model'); p.add_argument('data'); p.add_argument('--pos-scale', type=float, default=1.0)
a = p.parse_args()
torch.set_num_threads(1)
model = AutoModelForImageTextToText.from_pretrained(a.model, dtype=torch.float32)
with torch.no_grad(): model.model.visual.embeddings.position_embedding.weight.mul_(a.pos_scale)
X, cls = [], []  # class: shape * 5 + colour, 15 = background
for line in list(open(f'{a.data}/train.jsonl'))[:400]:
    f = f"{a.data}/{json.loads(line)['messages'][0]['content'][0]['image']}"
    pv, g = patches(f)
    with torch.no_grad():
        feats = model.model.visual(pv, grid_thw=torch.tensor([g])).pooler_output
    for t, cell in enumerate(cells(f)):
        X.append(feats[t].numpy()); cls.append(15 if cell is None else cell[2] * 5 + cell[3])
X, cls = np.array(X), np.array(cls)
Xn = X / np.sqrt((X ** 2).mean(1, keepdims=True))  # the text model's input norm sees RMS-normalised tokens
mu = {k: Xn[cls == k].mean(0) for k in set(cls)}
within = np.mean([((Xn[cls == k] - mu[k]) ** 2).sum(1).mean() for k in mu])
M = np.array([mu[k] for k in sorted(mu)])
between = ((M - M.mean(0)) ** 2).sum(1).mean()
print(f'{len(X)} tokens, {len(mu)} classes; RMS-normalised features: between-class variance {between:.3f}, within-class {within:.3f}')
cos = lambda u, v: u @ v / np.linalg.norm(u) / np.linalg.norm(v)
for c, name in enumerate(COLOURS):
    pairs = [(i, j) for i in range(3) for j in range(i + 1, 3)]
    print(f'{name:6s} cosine ' + '  '.join(f'{SHAPES[i]}/{SHAPES[j]} {cos(mu[i * 5 + c], mu[j * 5 + c]):.3f}' for i, j in pairs))
