# Where a model's position answers go wrong on the held-out questions: accuracy of the left/right and top/bottom
# questions by the asked shape's column / row and by the number of shapes in the image (read off the pixels, one 28 px
# cell per image token, as probe_features.py). Greedy exact match as torch_recipe.py (teacher-forced argmax).
#   python scripts/data/position_errors.py MODEL_DIR DATA_DIR
# (DATA_DIR from make_shapes.ts, holding tok_test.json from export_rows.ts)
import argparse, json
import numpy as np, torch
from PIL import Image
from transformers import AutoModelForImageTextToText
from shapes_patches import patches
p = argparse.ArgumentParser()
p.add_argument('model'); p.add_argument('data')
a = p.parse_args()
torch.set_num_threads(1)
model = AutoModelForImageTextToText.from_pretrained(a.model, dtype=torch.float32).eval()
BACKGROUND = np.array([123, 117, 104])


def shapes_in(img):
    """(row, col, shape) of every cell that holds a shape; the shape from how much of its bounding box it fills."""
    out = []
    for t in range(16):
        row, col = divmod(t, 4)
        mask = np.abs(img[row * 28:(row + 1) * 28, col * 28:(col + 1) * 28] - BACKGROUND).sum(-1) > 60
        if mask.sum() < 50: continue
        fill = mask.sum() / (mask.any(1).sum() * mask.any(0).sum())  # square ~1, circle ~0.79, triangle ~0.5
        out.append((row, col, 'square' if fill > 0.9 else 'circle' if fill > 0.65 else 'triangle'))
    return out


stats = {}
rows = json.load(open(f'{a.data}/tok_test.json'))
for r, line in zip(rows, open(f'{a.data}/test.jsonl')):
    user = json.loads(line)['messages'][0]['content']
    q, image = user[1]['text'], f"{a.data}/{user[0]['image']}"
    if 'left' not in q and 'top' not in q: continue
    found = shapes_in(np.asarray(Image.open(image).convert('RGB')).astype(np.float32))
    (row, col), = [(y, x) for y, x, s in found if s == q.split()[2]]
    ids, labels = torch.tensor([r['ids']]), torch.tensor([r['labels']])
    pv, grid = patches(image)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pv, image_grid_thw=torch.tensor([grid]),
                       mm_token_type_ids=(ids == 370).long()).logits
    m = labels[0, 1:] != -100
    ok = bool((logits[0, :-1].argmax(-1)[m] == labels[0, 1:][m]).all())
    kind = 'left/right' if 'left' in q else 'top/bottom'
    for key in [(kind, 'column' if 'left' in q else 'row', col if 'left' in q else row), (kind, 'shapes in the image', len(found))]:
        s = stats.setdefault(key, [0, 0]); s[0] += ok; s[1] += 1
for (kind, by, v), (ok, n) in sorted(stats.items()):
    print(f'{kind:10s} {by} {v}: {ok}/{n}')
