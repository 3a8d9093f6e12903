// Port of smart_resize from transformers/models/glm4v/image_processing_glm4v.py (identical in glm46v), with
// Python's semantics: round() is round-half-to-even, int() truncates, true division is IEEE double.
import { ProcessorError } from './errors';

/** Python 3 `round(x)` on a float: ties go to the even integer (round(2.5) = 2, round(3.5) = 4). */
export function pyRound(x: number): number {
  const r = Math.round(x); // ties toward +infinity
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The (height, width) an image or video is resized to: multiples of `factor` (patch * merge = 28) whose
 * `numFrames * h * w` area lies in [minPixels, maxPixels] (for images numFrames = temporalFactor = 2), keeping
 * the aspect ratio. Sides under `factor` are first scaled up; the max_pixels branch uses numFrames (not the
 * rounded t_bar) and never goes below one factor.
 *
 *   smartResize(2, 448, 448)  -> [448, 448]   (grid 32x32, 256 merged tokens)
 *   smartResize(2, 70, 42, 2, 28, 3136, 6272) -> [56, 56]  (70/28 = 2.5 and 42/28 = 1.5 both round to 2)
 */
export function smartResize(numFrames: number, height: number, width: number, temporalFactor = 2, factor = 28,
  minPixels = 112 * 112, maxPixels = 14 * 14 * 2 * 2 * 2 * 6144): [number, number] {
  if (numFrames < temporalFactor) {
    throw new ProcessorError(`t:${numFrames} must be larger than temporal_factor:${temporalFactor}`);
  }
  if (!(height > 0 && width > 0)) throw new ProcessorError(`smart_resize: image size must be positive, got ${height}x${width}`);
  if (height < factor || width < factor) {
    const scale = Math.max(factor / height, factor / width);
    height = Math.trunc(height * scale);
    width = Math.trunc(width * scale);
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > 200) {
    // Python prints a float with '.0' when it is integral (300.0); otherwise both print the shortest repr.
    throw new ProcessorError(`absolute aspect ratio must be smaller than 200, got ${Number.isInteger(ratio) ? ratio.toFixed(1) : ratio}`);
  }
  let hBar = pyRound(height / factor) * factor;
  let wBar = pyRound(width / factor) * factor;
  const tBar = pyRound(numFrames / temporalFactor) * temporalFactor;
  if (tBar * hBar * wBar > maxPixels) {
    const beta = Math.sqrt((numFrames * height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (tBar * hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (numFrames * height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return [hBar, wBar];
}
