// Which tokens receive vision features. GLM uses `<|image|>` as the placeholder of images and of video frames;
// a placeholder between `<|begin_of_video|>` and `<|end_of_video|>` belongs to a video.
export interface PlaceholderIds {
  image_token_id: number;
  video_start_token_id: number;
  video_end_token_id: number;
}

/** 0 text, 1 image, 2 video for every token of a row (the processor's mm_token_type_ids). */
export function tokenTypes(row: ArrayLike<number>, ids: PlaceholderIds): Int32Array {
  const types = new Int32Array(row.length);
  let inVideo = false;
  for (let i = 0; i < row.length; i++) {
    const tok = row[i]!;
    if (tok === ids.video_start_token_id) inVideo = true;
    else if (tok === ids.video_end_token_id) inVideo = false;
    if (tok === ids.image_token_id) types[i] = inVideo ? 2 : 1;
  }
  return types;
}

/**
 * Flat positions (b * L + l) of the image and of the video placeholders, row-major over (batch, sequence):
 * the order in which masked_scatter fills them, so features must be concatenated in that order too.
 * Padding is never a placeholder (the pad id is not the image id).
 */
export function placeholderPositions(rows: number[][], ids: PlaceholderIds): { image: number[]; video: number[] } {
  const image: number[] = [], video: number[] = [];
  rows.forEach((row, b) => {
    const L = row.length;
    tokenTypes(row, ids).forEach((t, l) => {
      if (t === 1) image.push(b * L + l);
      else if (t === 2) video.push(b * L + l);
    });
  });
  return { image, video };
}
