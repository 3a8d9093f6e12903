# PyTorch prototype of the built-in model's training recipe, for fast recipe search (~3x faster per step than our wasm
# finetune here): the same token rows as our loader (research/shapes/export_rows.ts), the same init, AdamW with warmup +
# cosine and clipping at 1.0; prints exact-match accuracy per question kind on the test rows (teacher-forced argmax
# over the answer tokens, which equals greedy exact match) and on 200 training rows. --oracle replaces the vision
# tower by perfect per-token features (a fixed embedding of shape x colour read off the pixels, plus the token's cell,
# times --oracle_pos) to test the language model alone; --oracle_shape S makes it a colour embedding plus S x a shape
# embedding (S < 1: the shapes as hard to tell apart as in the random tower's features), --oracle_noise F adds fresh
# noise to it, and --oracle_pixels F replaces it by a fixed random linear map of the token's pixels. --freeze_vision
# trains the text model alone on the tower's random-init features (--train_vision K,... keeps the named tower weights
# training); --vision_lr F trains the tower at F x the lr; --freeze_keys K,... freezes any named weights; --vis_pos /
# --vis_blocks / --vis_attn / --vis_merger / --vis_scale / --embed_scale / --post_norm rescale parts of the init
# before training (what the README's search tried); --init can be a trained model (a second stage) and --save DIR
# writes the result.
#   python research/shapes/torch_recipe.py --init out/init --data out/shapes [--steps N --lr X --oracle]
# (out/init from init_builtin.ts; out/shapes holding tok_train.json / tok_test.json from export_rows.ts)
import json, math, time, argparse
import numpy as np, torch
from transformers import AutoModelForImageTextToText
from shapes_patches import MEAN, STD, patches as image_patches
p = argparse.ArgumentParser()
p.add_argument('--init', required=True); p.add_argument('--data', required=True)
p.add_argument('--steps', type=int, default=300); p.add_argument('--batch', type=int, default=16)
p.add_argument('--lr', type=float, default=2e-3); p.add_argument('--warmup', type=int, default=30)
p.add_argument('--wd', type=float, default=0.0); p.add_argument('--eval_every', type=int, default=100)
p.add_argument('--threads', type=int, default=1); p.add_argument('--print_every', type=int, default=25); p.add_argument('--seed', type=int, default=0)
p.add_argument('--beta2', type=float, default=0.999); p.add_argument('--train_n', type=int, default=0); p.add_argument('--oracle', action='store_true')
p.add_argument('--oracle_pos', type=float, default=1.0, help='with --oracle: scale of the cell embedding in the features (0: none)')
p.add_argument('--oracle_shape', type=float, default=0.0, help='with --oracle: features as colour + this x shape embeddings instead of one embedding per class (0: per class)')
p.add_argument('--oracle_noise', type=float, default=0.0, help='with --oracle: add this x fresh standard normal noise to every feature on every call')
p.add_argument('--oracle_pixels', type=float, default=0.0, help='with --oracle: features as a fixed random linear map of the token\'s 28 x 28 pixels, about this rms for a token holding a shape, instead of the class embeddings')
p.add_argument('--kinds', default='', help='comma-separated question kinds to train and test on (default all)')
p.add_argument('--repeat', default='', help='kind=N,... : training rows of these kinds repeated N times')
p.add_argument('--first', default='', help='kind[,kind...]=N: the first N steps train on rows of these kinds only (a curriculum)')
p.add_argument('--post_norm', type=float, default=0.0, help='set the text layers\' post-sublayer norm weights to this at start')
p.add_argument('--vis_scale', type=float, default=1.0, help='scale the vision merger\'s down_proj (so the image features) by this at start')
p.add_argument('--vis_blocks', type=float, default=1.0, help='scale the vision blocks\' weight matrices by this at start')
p.add_argument('--vis_attn', type=float, default=1.0, help='scale the vision blocks\' attention output projections by this at start (0: the tower sees each patch alone)')
p.add_argument('--vis_merger', type=float, default=1.0, help='scale the vision merger\'s weight matrices by this at start')
p.add_argument('--freeze_vision', action='store_true', help='train the text model alone')
p.add_argument('--save', default='', help='save the trained model here (Hugging Face layout) at the end')
p.add_argument('--freeze_keys', default='', help='comma-separated substrings of parameter names that do not train')
p.add_argument('--train_vision', default='', help='with --freeze_vision: comma-separated substrings of vision parameter names that still train')
p.add_argument('--vision_lr', type=float, default=1.0, help='the vision tower\'s learning rate as a fraction of --lr')
p.add_argument('--vis_pos', type=float, default=1.0, help='scale the vision position embedding by this at start')
p.add_argument('--embed_scale', type=float, default=1.0, help='scale the token embeddings by this at start')
a = p.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(a.seed)
model = AutoModelForImageTextToText.from_pretrained(a.init, dtype=torch.float32)
with torch.no_grad():
    for n, w in model.named_parameters():
        if a.post_norm and ('post_self_attn_layernorm' in n or 'post_mlp_layernorm' in n): w.fill_(a.post_norm)
        if 'embed_tokens' in n: w.mul_(a.embed_scale)
        if 'merger.down_proj' in n: w.mul_(a.vis_scale)
        if 'visual.embeddings.position_embedding' in n: w.mul_(a.vis_pos)
        if 'visual.blocks' in n and 'norm' not in n and 'bias' not in n: w.mul_(a.vis_blocks)
        if 'visual.blocks' in n and 'attn.proj' in n: w.mul_(a.vis_attn)
        if 'visual.merger' in n and 'norm' not in n and 'bias' not in n: w.mul_(a.vis_merger)
cache = {}
def patches(f):
    if f not in cache: cache[f] = image_patches(f)
    return cache[f]
if a.oracle:
    from transformers.modeling_outputs import BaseModelOutputWithPooling
    g = torch.Generator().manual_seed(5); E_cls = torch.randn(16, 128, generator=g); E_pos = torch.randn(16, 128, generator=g); E_shape = torch.randn(3, 128, generator=g)
    P_pix = torch.randn(3 * 28 * 28, 128, generator=g) / 28
    RGB = torch.tensor([[220, 30, 30], [30, 160, 50], [30, 70, 220], [235, 205, 20], [140, 50, 180]], dtype=torch.float32)
    RGBn = (RGB / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    def oracle(pixel_values, grid_thw=None, **kw):
        x = pixel_values.reshape(-1, 2, 2, 3, 2, 14, 14)[:, :, :, :, 0]  # token, mh, mw, c, py, px
        x = x.permute(0, 3, 1, 4, 2, 5).reshape(-1, 3, 28, 28)  # token, c, y, x
        mask = x.abs().amax(1) > 0.5; fill = mask.flatten(1).sum(1)
        # shape from how much of its bounding box it fills: square ~1, circle ~0.79, triangle ~0.5
        h = mask.any(2).sum(1).clamp(min=1); w = mask.any(1).sum(1).clamp(min=1)
        ratio = fill / (h * w)
        shape = torch.where(ratio > 0.9, 1, torch.where(ratio > 0.65, 0, 2))
        col = (x.flatten(2) * mask.flatten(1)[:, None]).sum(2) / fill.clamp(min=1)[:, None]
        cid = ((col[:, None, :] - RGBn[None]) ** 2).sum(-1).argmin(1)
        cls = torch.where(fill < 50, 15, shape * 5 + cid)
        pos = torch.arange(x.shape[0]) % 16
        feat = E_cls[cls]
        if a.oracle_shape:  # a colour embedding and a shape embedding a.oracle_shape times as large (background: its own)
            feat = torch.where((fill < 50)[:, None], E_cls[15], E_cls[cid] + a.oracle_shape * E_shape[shape])
        if a.oracle_pixels:  # no tower: what a linear map keeps of the pixels (jitter, size and edges included)
            feat = x.flatten(1) @ P_pix * a.oracle_pixels
        feat = feat + a.oracle_pos * E_pos[pos]
        if a.oracle_noise: feat = feat + a.oracle_noise * torch.randn_like(feat)
        return BaseModelOutputWithPooling(pooler_output=feat)
    model.model.visual.forward = oracle
train = json.load(open(a.data + '/tok_train.json')); test = json.load(open(a.data + '/tok_test.json'))
if a.train_n: train = train[:a.train_n]
KIND = lambda q: 'colour' if q.startswith('What colour') else 'shape' if q.startswith('Which shape') else 'count' if q.startswith('How many') else 'horizontal' if 'left' in q else 'vertical'
for r, l in zip(test, open(a.data + '/test.jsonl')): r['kind'] = KIND(json.loads(l)['messages'][0]['content'][1]['text'])
if a.kinds or a.repeat or a.first:
    for r, l in zip(train, open(a.data + '/train.jsonl')): r['kind'] = KIND(json.loads(l)['messages'][0]['content'][1]['text'])
if a.repeat:
    rep = {k: int(n) for k, n in (x.split('=') for x in a.repeat.split(','))}
    train = [r for r in train for _ in range(rep.get(r['kind'], 1))]
if a.kinds:
    train = [r for r in train if r['kind'] in a.kinds.split(',')]; test = [r for r in test if r['kind'] in a.kinds.split(',')]
def batch(rows):
    L = max(len(r['ids']) for r in rows)
    ids = torch.full((len(rows), L), 352); am = torch.zeros((len(rows), L), dtype=torch.long); lab = torch.full((len(rows), L), -100)
    for i, r in enumerate(rows):  # left padding as our tokenizer
        n = len(r['ids']); ids[i, L - n:] = torch.tensor(r['ids']); am[i, L - n:] = 1; lab[i, L - n:] = torch.tensor(r['labels'])
    pv = [patches(r['image']) for r in rows]
    tt = (ids == 370).long()
    return dict(mm_token_type_ids=tt, input_ids=ids, attention_mask=am, labels=lab, pixel_values=torch.cat([x for x, _ in pv]), image_grid_thw=torch.tensor([g for _, g in pv]))
if a.freeze_vision:
    for n, w in model.model.visual.named_parameters(): w.requires_grad_(any(k in n for k in a.train_vision.split(',') if k))
    print('vision trainable:', [n for n, w in model.model.visual.named_parameters() if w.requires_grad], flush=True)
for n, w in model.named_parameters():
    if any(k in n for k in a.freeze_keys.split(',') if k): w.requires_grad_(False)
vis = [w for w in model.model.visual.parameters() if w.requires_grad]; vis_ids = {id(w) for w in vis}
groups = [{'params': [w for w in model.parameters() if w.requires_grad and id(w) not in vis_ids]}]
if vis: groups.append({'params': vis, 'lr': a.lr * a.vision_lr})
opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, a.beta2), weight_decay=a.wd)
sched = lambda s: (s + 1) / a.warmup if s < a.warmup else 0.5 * (1 + math.cos(math.pi * (s - a.warmup) / max(1, a.steps - a.warmup)))
lr_s = torch.optim.lr_scheduler.LambdaLR(opt, sched)
rng = np.random.default_rng(a.seed)
def evaluate(rows_all=None):
    rows_all = rows_all if rows_all is not None else test
    model.eval(); ok = 0; n = 0; kinds = {}
    with torch.no_grad():
        for i in range(0, len(rows_all), 50):
            rows = rows_all[i:i + 50]; b = batch(rows)
            logits = model(**{k: v for k, v in b.items() if k != 'labels'}).logits
            pred = logits[:, :-1].argmax(-1); tgt = b['labels'][:, 1:]
            for r in range(len(rows)):
                m = (tgt[r] != -100).tolist(); good = (pred[r] == tgt[r]).tolist(); j = 0
                while j < len(m):
                    if m[j]:
                        k = j
                        while k < len(m) and m[k]: k += 1
                        g = all(good[j:k]); n += 1; ok += g; j = k
                        kd = kinds.setdefault(rows[r].get('kind', '?'), [0, 0]); kd[0] += g; kd[1] += 1
                    else: j += 1
    model.train(); return f"{ok / n:.3f} " + ' '.join(f"{k}:{v[0]}/{v[1]}" for k, v in sorted(kinds.items()))
with torch.no_grad():
    b0 = batch(train[:8]); f0 = model.model.visual(b0['pixel_values'], grid_thw=b0['image_grid_thw']).pooler_output
    print(f"image feature rms {f0.pow(2).mean().sqrt():.4f}, token embedding rms {model.model.language_model.embed_tokens.weight.pow(2).mean().sqrt():.4f}", flush=True)
t0 = time.time(); order = []
first_kind, first_n = (a.first.split('=')[0], int(a.first.split('=')[1])) if a.first else ('', 0)
first_rows = [r for r in train if r['kind'] in first_kind.split(',')] if a.first else []
for step in range(a.steps):
    if step < first_n:
        rows = [first_rows[j] for j in rng.integers(0, len(first_rows), a.batch)]
    else:
        if len(order) < a.batch: order += list(rng.permutation(len(train)))
        rows = [train[j] for j in order[:a.batch]]; order = order[a.batch:]
    out = model(**batch(rows)); out.loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(); opt.zero_grad(); lr_s.step()
    if (step + 1) % a.print_every == 0: print(f'step {step+1} loss {out.loss.item():.4f} grad_norm {gn.item():.3f} {(time.time()-t0)/(step+1):.3f}s/step', flush=True)
    if (step + 1) % a.eval_every == 0 or step + 1 == a.steps: print(f'step {step+1} acc {evaluate()} train_acc {evaluate(train[:200])}', flush=True)
if a.save: model.save_pretrained(a.save)
