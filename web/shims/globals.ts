// Node globals the package names, for the browser bundle (esbuild inject). `Buffer` only wraps PNG bytes in
// processors/image_io.ts (./pngjs.ts rewraps them for pngjs's parser); `process` gives an empty environment (no
// GLM46V_* switches in a page), stderr lines on the console, and no `versions.node`, so nothing takes a Node path.
export const Buffer = {
  from: (b: ArrayBufferLike, off = 0, len?: number): Uint8Array => new Uint8Array(b, off, len ?? b.byteLength - off),
};

export const process = {
  env: {} as Record<string, string | undefined>,
  versions: {} as Record<string, string>,
  platform: 'browser',
  exitCode: undefined as number | undefined,
  stderr: { write: (s: string) => (console.warn(s.replace(/\n$/, '')), true) },
  stdout: { write: (s: string) => (console.log(s.replace(/\n$/, '')), true) },
};
