#!/usr/bin/env bash
# The built-in model's whole recipe: dataset, random init, `glm46v finetune` on CPU, held-out accuracy, and (only
# when the accuracy reaches MIN_ACCURACY) the trained model copied into assets/model/.
#   scripts/data/train_builtin.sh            # WORK=out/builtin; STEPS, FIRST_STEPS, BATCH, LR, TRAIN, TURNS,
#                                            # TEXT_STD override the recipe
# Runs on the wasm backend; GLM46V_WASM_THREADS=2 uses two threads where the cores are free.
set -euo pipefail
cd "$(dirname "$0")/../.."

WORK=${WORK:-out/builtin}
STEPS=${STEPS:-4000}
# A curriculum inside one schedule: "Which shape is <colour>?" alone for the first FIRST_STEPS steps, then every
# question kind. Trained on the mix from the start, the model never learns to pick out a shape by a word of the
# question (it stays near chance on shape questions); learned first on the one kind that needs nothing else, the
# binding carries over to the other kinds. (Two separate finetune calls lose it again at the second fresh warmup.)
FIRST_STEPS=${FIRST_STEPS:-600}
BATCH=${BATCH:-16}
LR=${LR:-1e-3}
WARMUP=${WARMUP:-30}
TRAIN=${TRAIN:-20000}
# One question per training chat: in multi-turn chats later answers follow from earlier ones without the image
# ("What colour is the circle?" red, "Which shape is red?"), and training learned that shortcut instead of the image.
TURNS=${TURNS:-1}
SEED=${SEED:-0}
# HF's init std 0.02 leaves this 128-wide text model's attention near uniform; at 0.1 the shape stage learns.
TEXT_STD=${TEXT_STD:-0.1}
MIN_ACCURACY=${MIN_ACCURACY:-95}

rm -rf "$WORK"
mkdir -p "$WORK"
start=$(date +%s)

npx tsx scripts/data/make_shapes.ts "$WORK/data" --train "$TRAIN" --test 200 --turns "$TURNS"
grep '"text":"Which shape' "$WORK/data/train.jsonl" > "$WORK/data/train_shape.jsonl"
npx tsx scripts/data/init_builtin.ts "$WORK/init" --seed "$SEED" --text-std "$TEXT_STD"
node bin/glm46v.js finetune --model "$WORK/init" --data "$WORK/data/train.jsonl" --out "$WORK/run" \
  --first-data "$WORK/data/train_shape.jsonl" --first-steps "$FIRST_STEPS" \
  --steps "$STEPS" --batch-size "$BATCH" --lr "$LR" --warmup "$WARMUP" --seed 42 --save-every 500 2> "$WORK/finetune.log"
trained=$(( $(date +%s) - start ))
echo "train_builtin: dataset + init + finetune took ${trained}s"

npx tsx scripts/data/eval.ts --model "$WORK/run/final" --data "$WORK/data/test.jsonl" | tee "$WORK/eval.txt"
pct=$(sed -n 's/^accuracy: .* = \([0-9.]*\)%$/\1/p' "$WORK/eval.txt")
if awk -v p="$pct" -v m="$MIN_ACCURACY" 'BEGIN { exit !(p >= m) }'; then
  cp "$WORK/run/final"/* assets/model/
  echo "train_builtin: ${pct}% >= ${MIN_ACCURACY}%: copied $WORK/run/final into assets/model/"
else
  echo "train_builtin: ${pct}% < ${MIN_ACCURACY}%: assets/model/ left unchanged" >&2
  exit 1
fi
