// Reading a GLM answer: the `<think>` reasoning apart from the answer, and `<|begin_of_box|>` coordinates
// (normalised to 0-1000 by GLM-4.1V/4.6V grounding) as pixel boxes of the original image.

export interface SplitAnswer {
  /** text inside <think>...</think> (empty when the model did not think) */
  reasoning: string;
  /** the rest, with <answer> tags and the think block removed */
  answer: string;
}

/** Splits `<think>…</think>` from the answer; an unclosed `<think>` (cut off) is all reasoning. */
export function splitThinking(text: string): SplitAnswer {
  const open = text.indexOf('<think>');
  if (open < 0) return { reasoning: '', answer: stripAnswerTags(text) };
  const close = text.indexOf('</think>', open);
  if (close < 0) return { reasoning: text.slice(open + 7).trim(), answer: '' };
  return {
    reasoning: text.slice(open + 7, close).trim(),
    answer: stripAnswerTags(text.slice(0, open) + text.slice(close + 8)),
  };
}

function stripAnswerTags(s: string): string {
  return s.replace(/<\/?answer>/g, '').trim();
}

export interface Box {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/**
 * Boxes in `<|begin_of_box|>[[x1,y1,x2,y2], ...]<|end_of_box|>` (or `[x1,y1,x2,y2]`), coordinates in 0-1000,
 * scaled to an image of `width` x `height` pixels. Malformed boxes are skipped.
 */
export function parseBoxes(text: string, width: number, height: number): Box[] {
  const boxes: Box[] = [];
  const re = /<\|begin_of_box\|>([\s\S]*?)<\|end_of_box\|>/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    for (const quad of m[1]!.matchAll(/\[\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\]/g)) {
      const [x1, y1, x2, y2] = quad.slice(1, 5).map(Number) as [number, number, number, number];
      if ([x1, y1, x2, y2].some((v) => !Number.isFinite(v))) continue;
      boxes.push({ x1: (x1 / 1000) * width, y1: (y1 / 1000) * height, x2: (x2 / 1000) * width, y2: (y2 / 1000) * height });
    }
  }
  return boxes;
}
