// Access to the committed reference fixtures made by scripts/parity/ (no Python needed to run the specs).
import * as path from 'path';
import { HostTensor, readAllSafetensors } from '../../lib/safetensors';

export const FIXTURES = path.join(__dirname, '..', 'fixtures');

export function fixturePath(...parts: string[]): string {
  return path.join(FIXTURES, ...parts);
}

export interface Reference {
  file: string;
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
  /** the model folder named by the file's metadata, resolved */
  modelDir: string;
  get(name: string): HostTensor;
}

export function loadReference(file: string): Reference {
  const { tensors, metadata } = readAllSafetensors(file);
  return {
    file,
    tensors,
    metadata,
    modelDir: path.resolve(path.dirname(file), metadata.model ?? '.'),
    get(name: string) {
      const t = tensors.get(name);
      if (!t) throw new Error(`${file}: no reference tensor '${name}'`);
      return t;
    },
  };
}
