// The labelled token rows of a chat JSONL as our loader builds them (ids, labels, image path), as JSON for
// research/shapes/torch_recipe.py:   npx tsx research/shapes/export_rows.ts MODEL_DIR IN.jsonl OUT.json
import * as fs from 'fs';
import { ChatDataset } from '../../train/data';
const [model, file, out] = process.argv.slice(2);
const ds = ChatDataset.fromPretrained(model!);
const d = ds.load(file!);
fs.writeFileSync(out!, JSON.stringify(d.examples.map((e) => ({ ids: e.inputIds, labels: e.labels, image: e.images[0] }))));
console.log(d.examples.length, Math.max(...d.examples.map((e) => e.inputIds.length)));
