// `pngjs` in the browser bundle (esbuild alias): pngjs's own browserified build (the same parser, with a pure-JS
// zlib), whose sync reader wants its bundled Buffer polyfill; processors/image_io.ts calls PNG.sync.read as in Node.
import * as browserPng from 'pngjs/browser.js';

type PngClass = { new (o: { width: number; height: number }): { data: Uint8Array }; sync: { read(b: Uint8Array, o?: object): unknown } };
const Png = (browserPng as { PNG: PngClass }).PNG;
/** The polyfill Buffer class inside pngjs/browser.js: a new PNG's pixel buffer is one. */
export const PngBuffer = Object.getPrototypeOf(new Png({ width: 1, height: 1 }).data).constructor as {
  from(b: ArrayBufferLike, off: number, len: number): Uint8Array;
};

export const PNG = {
  sync: {
    read: (b: Uint8Array, opts?: object) => Png.sync.read(PngBuffer.from(b.buffer, b.byteOffset, b.byteLength), opts),
  },
};
