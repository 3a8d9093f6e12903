// The processors' error class (style.md section 11): bad input files, configs and shapes, named in the message.
import { oneLine } from '../lib/config';

export class ProcessorError extends Error {
  override name = 'ProcessorError';
  constructor(message: string) {
    super(oneLine(message));
  }
}

/**
 * The largest image decoded, in pixels (width * height): PIL's Image.MAX_IMAGE_PIXELS, past which PIL warns of a
 * decompression bomb. Decoders check the declared size against it before allocating any pixel buffer.
 */
export const MAX_IMAGE_PIXELS = 89_478_485;

/** Refuses an image whose declared size passes MAX_IMAGE_PIXELS; `name` is the file. */
export function checkImageSize(name: string, format: string, width: number, height: number): void {
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new ProcessorError(`${name}: ${format} of ${width}x${height} = ${width * height} pixels is over the limit of ${MAX_IMAGE_PIXELS} (PIL's MAX_IMAGE_PIXELS)`);
  }
}
