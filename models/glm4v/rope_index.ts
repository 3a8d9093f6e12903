// Port of Glm4vModel.get_rope_index / get_vision_position_ids (transformers/models/glm4v/modeling_glm4v.py) and
// vision_utils.get_vision_position_ids / get_vision_cu_seqlens: pure index math on plain arrays, no tensors.
import { IMAGE, mmTokenTypeIds, TEXT, VIDEO } from './placeholders';

export interface RopeIndexConfig {
  image_token_id: number;
  video_start_token_id: number;
  video_end_token_id: number;
  spatialMergeSize: number;
}

export interface RopeIndex {
  /** [3][B][L]: temporal, height and width positions. Padding slots hold 0, as the reference's. */
  positionIds: number[][][];
  /** per batch row: max position + 1 - unpadded length (rope_deltas [B, 1], flattened) */
  ropeDeltas: number[];
}

/** Video grids as the LLM sees them: GLM separates frames by timestamps, so [t, h, w] becomes t grids [1, h, w]. */
export function flattenGridThw(gridThw: readonly (readonly number[])[]): number[][] {
  return gridThw.flatMap(([t, h, w]) => Array.from({ length: t! }, () => [1, h!, w!]));
}

/** Runs of equal values: [value, start, end) (itertools.groupby). */
function runs(types: ArrayLike<number>): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (let i = 0; i < types.length; i++) {
    const last = out[out.length - 1];
    if (last && last[0] === types[i]) last[2] = i + 1;
    else out.push([types[i]!, i, i + 1]);
  }
  return out;
}

/**
 * 3-D M-RoPE positions of every token. Text advances all three axes by one per token. A vision run (one image, or
 * one video frame) with merged grid t x gh x gw starting at `st` gets (st + ti, st + row, st + col) row-major, and
 * the next run starts at st + max(h, w) / merge. Grids are consumed in order across the whole batch; each video's
 * grid gives one frame grid per temporal patch. Temporal ids are plain arange(t): there is no time scaling.
 * Example (merge 2, image grid [1, 4, 6]): text a b | image 2x3 | text c ->
 *   t: 0 1 2 2 2 2 2 2 5,  h: 0 1 2 2 2 3 3 3 5,  w: 0 1 2 3 4 2 3 4 5  (next = 2 + max(4, 6)/2 = 5)
 */
export function getRopeIndex(
  inputIds: number[][],
  attentionMask: number[][] | undefined,
  imageGridThw: number[][],
  videoGridThw: number[][],
  cfg: RopeIndexConfig,
  /** the processor's mm_token_type_ids, one row per input row; computed from the ids when absent */
  tokenTypes?: ArrayLike<number>[],
): RopeIndex {
  const m = cfg.spatialMergeSize;
  const grids: Record<number, number[][]> = { [IMAGE]: imageGridThw, [VIDEO]: flattenGridThw(videoGridThw) };
  const next: Record<number, number> = { [IMAGE]: 0, [VIDEO]: 0 };
  const B = inputIds.length;
  const L = inputIds[0]?.length ?? 0;
  const positionIds = [0, 1, 2].map(() => Array.from({ length: B }, () => new Array<number>(L).fill(0)));
  const ropeDeltas: number[] = [];
  inputIds.forEach((row, b) => {
    const mask = attentionMask?.[b];
    if (row.length !== L || (attentionMask && mask?.length !== L)) {
      throw new Error(`getRopeIndex: row ${b} has ${row.length} ids and ${mask?.length} mask values, expected ${L}`);
    }
    const keep = row.map((_, i) => i).filter((i) => !mask || mask[i] === 1);
    if (keep.length === 0) throw new Error(`getRopeIndex: row ${b} has no unmasked token`);
    const types = tokenTypes?.[b] ?? mmTokenTypeIds(row, cfg);
    if (types.length !== L) throw new Error(`getRopeIndex: row ${b} has ${types.length} token types for ${L} ids`);
    const pos = [new Int32Array(keep.length), new Int32Array(keep.length), new Int32Array(keep.length)];
    let current = 0;
    for (const [type, s, e] of runs(keep.map((i) => types[i]!))) {
      if (type === TEXT) {
        for (let i = s; i < e; i++) pos[0]![i] = pos[1]![i] = pos[2]![i] = current + i - s;
        current += e - s;
        continue;
      }
      const kind = type === IMAGE ? 'image' : 'video frame';
      const grid = grids[type]![next[type]!++];
      if (!grid) throw new Error(`getRopeIndex: row ${b} has more ${kind} runs than the ${grids[type]!.length} ${kind} grids given`);
      const [t, gh, gw] = [grid[0]!, Math.floor(grid[1]! / m), Math.floor(grid[2]! / m)];
      if (e - s !== t * gh * gw) {
        throw new Error(`getRopeIndex: row ${b}: a ${kind} run of ${e - s} tokens at ${keep[s]} does not fit grid ${JSON.stringify(grid)} (${t * gh * gw} tokens at merge ${m})`);
      }
      let i = s;
      for (let ti = 0; ti < t; ti++) {
        for (let r = 0; r < gh; r++) {
          for (let c = 0; c < gw; c++, i++) [pos[0]![i], pos[1]![i], pos[2]![i]] = [current + ti, current + r, current + c];
        }
      }
      current += Math.floor(Math.max(grid[1]!, grid[2]!) / m);
    }
    let max = -Infinity;
    keep.forEach((at, i) => {
      for (let a = 0; a < 3; a++) {
        positionIds[a]![b]![at] = pos[a]![i]!;
        max = Math.max(max, pos[a]![i]!);
      }
    });
    ropeDeltas.push(max + 1 - keep.length);
  });
  for (const [type, kind] of [[IMAGE, 'image'], [VIDEO, 'video frame']] as const) {
    if (next[type]! < grids[type]!.length) {
      throw new Error(`getRopeIndex: ${grids[type]!.length} ${kind} grids given but the input ids hold ${next[type]} ${kind} runs`);
    }
  }
  return { positionIds, ropeDeltas };
}

/**
 * (hpos, wpos) of every patch in processor order: per image and temporal slice, merge windows row-major and the
 * merge x merge patches of a window row-major (window (bh, bw), inner (i, j) -> (bh*m + i, bw*m + j)).
 */
export function visionPositionIds(gridThw: readonly (readonly number[])[], merge: number): { hpos: Int32Array; wpos: Int32Array } {
  const n = gridThw.reduce((a, [t, h, w]) => a + t! * h! * w!, 0);
  const hpos = new Int32Array(n), wpos = new Int32Array(n);
  let k = 0;
  for (const [t, h, w] of gridThw) {
    if (h! % merge || w! % merge) throw new Error(`visionPositionIds: grid ${JSON.stringify([t, h, w])} is not divisible by the merge size ${merge}`);
    for (let ti = 0; ti < t!; ti++) {
      for (let bh = 0; bh < h! / merge; bh++) {
        for (let bw = 0; bw < w! / merge; bw++) {
          for (let i = 0; i < merge; i++) {
            for (let j = 0; j < merge; j++, k++) [hpos[k], wpos[k]] = [bh * merge + i, bw * merge + j];
          }
        }
      }
    }
  }
  return { hpos, wpos };
}

/** Attention span boundaries: one span of h*w patches per image and temporal slice, [0, ..., total]. */
export function cuSeqlens(gridThw: readonly (readonly number[])[]): number[] {
  const out = [0];
  for (const [t, h, w] of gridThw) for (let i = 0; i < t!; i++) out.push(out[out.length - 1]! + h! * w!);
  return out;
}
