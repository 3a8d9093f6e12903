// Files that ship with the package (the built-in model, the examples, native/), found the same way from the checkout
// (lib/) and from the compiled package (dist/lib/), installed or not.
import * as fs from 'fs';
import * as path from 'path';

/** The folder with this package's package.json, found from this file in the checkout (lib/) or the build (dist/lib/). */
export function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && (JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: string }).name === 'glm46v') return dir;
    if (path.dirname(dir) === dir) throw new Error(`glm46v: no package.json above ${__dirname}`);
  }
}

/** A path inside the package, e.g. packageFile('assets', 'model'). */
export function packageFile(...parts: string[]): string {
  return path.join(packageRoot(), ...parts);
}
