# How much of an image token's residual stream in the text model is still the image feature, layer by layer: the rms
# of the image and text tokens' hidden states, and the mean cosine of each image token's hidden state with its input
# feature. GLM's text layers RMS-normalise every sublayer's output before adding it (post_self_attn_layernorm,
# post_mlp_layernorm), so each layer adds an update of rms ~1 whatever the input's size.
#   python research/shapes/image_residual.py MODEL_DIR DATA_DIR [--rows N]
# (DATA_DIR holding tok_test.json from export_rows.ts; the first N rows, 16 by default)
import argparse, json
import torch
from transformers import AutoModelForImageTextToText
from shapes_patches import patches
p = argparse.ArgumentParser()
p.add_argument('model'); p.add_argument('data'); p.add_argument('--rows', type=int, default=16)
a = p.parse_args()
torch.set_num_threads(1)
model = AutoModelForImageTextToText.from_pretrained(a.model, dtype=torch.float32).eval()
IMAGE = model.config.image_token_id
rows = json.load(open(f'{a.data}/tok_test.json'))[:a.rows]
sums = None
with torch.no_grad():
    for r in rows:
        ids = torch.tensor([r['ids']]); pv, g = patches(r['image'])
        hs = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pv, image_grid_thw=torch.tensor([g]),
                   mm_token_type_ids=(ids == IMAGE).long(), output_hidden_states=True).hidden_states
        img = ids[0] == IMAGE
        row = [(h[0][img].pow(2).mean().sqrt().item(), h[0][~img].pow(2).mean().sqrt().item(),
                torch.nn.functional.cosine_similarity(h[0][img], hs[0][0][img], dim=-1).mean().item()) for h in hs]
        sums = row if sums is None else [tuple(x + y for x, y in zip(s, t)) for s, t in zip(sums, row)]
print('layer  image rms  text rms  cos(image, its input)')
for i, (ri, rt, c) in enumerate(sums):
    print(f'{"input" if i == 0 else i:>5}  {ri / len(rows):9.3f}  {rt / len(rows):8.3f}  {c / len(rows):21.3f}')
