# Where a model's position answers go wrong on the held-out questions: accuracy of the left/right and top/bottom
# questions by the asked shape's column / row and by the number of shapes in the image (read off the pixels by
# shapes_patches.cells). Greedy exact match as torch_recipe.py (teacher-forced argmax).
#   python research/shapes/position_errors.py MODEL_DIR DATA_DIR
# (DATA_DIR from make_shapes.ts, holding tok_test.json from export_rows.ts)
import argparse, json
import torch
from transformers import AutoModelForImageTextToText
from shapes_patches import SHAPES, cells, patches
p = argparse.ArgumentParser()
p.add_argument('model'); p.add_argument('data')
a = p.parse_args()
torch.set_num_threads(1)
model = AutoModelForImageTextToText.from_pretrained(a.model, dtype=torch.float32).eval()
stats = {}
rows = json.load(open(f'{a.data}/tok_test.json'))
for r, line in zip(rows, open(f'{a.data}/test.jsonl')):
    user = json.loads(line)['messages'][0]['content']
    q, image = user[1]['text'], f"{a.data}/{user[0]['image']}"
    if 'left' not in q and 'top' not in q: continue
    found = [c for c in cells(image) if c is not None]
    (row, col), = [(y, x) for y, x, s, _ in found if SHAPES[s] == q.split()[2]]
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
