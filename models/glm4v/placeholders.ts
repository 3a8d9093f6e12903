// Which tokens receive vision features. GLM uses `<|image|>` as the placeholder of images and of video frames;
// a placeholder between `<|begin_of_video|>` and `<|end_of_video|>` belongs to a video.
export interface PlaceholderIds {
  image_token_id: number;
  video_start_token_id: number;
  video_end_token_id: number;
}

export const TEXT = 0, IMAGE = 1, VIDEO = 2;

/**
 * Token types of one row (0 text, 1 image, 2 video), what the processor's create_mm_token_type_ids gives as
 * `mm_token_type_ids`: GLM writes video frames with the image token, so an image token is a video frame while more
 * video starts than ends precede it. The model's one token-type function; forward takes the processor's when given.
 */
export function mmTokenTypeIds(row: ArrayLike<number>, ids: PlaceholderIds): Int32Array {
  const out = new Int32Array(row.length);
  let starts = 0, ends = 0;
  for (let i = 0; i < row.length; i++) {
    const tok = row[i]!;
    if (tok === ids.video_start_token_id) starts++;
    if (tok === ids.video_end_token_id) ends++;
    if (tok === ids.image_token_id) out[i] = starts > ends ? VIDEO : IMAGE;
  }
  return out;
}

/**
 * Flat positions (b * L + l) of the image and of the video placeholders, row-major over (batch, sequence):
 * the order in which masked_scatter fills them, so features must be concatenated in that order too.
 * Padding is never a placeholder (the pad id is not the image id).
 */
export function placeholderPositions(types: ArrayLike<number>[]): { image: number[]; video: number[] } {
  const image: number[] = [], video: number[] = [];
  types.forEach((row, b) => {
    const L = row.length;
    for (let l = 0; l < L; l++) {
      if (row[l] === IMAGE) image.push(b * L + l);
      else if (row[l] === VIDEO) video.push(b * L + l);
    }
  });
  return { image, video };
}
