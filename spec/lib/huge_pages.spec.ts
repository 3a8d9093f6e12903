// lib/native/load.ts hugePages (the quiet addon's hugePageMark / hugePageAdvise) and its use by the in-place bf16
// load (lib/kernels/tf_bf16.ts): madvise(MADV_HUGEPAGE) on what one allocation maps and on nothing else. The bytes
// advised are those of successful madvise calls, whether or not the kernel then finds huge pages for them (so these
// checks do not depend on the machine's free memory).
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { installKernelOverrides } from '../../lib/kernels';
import { tfBf16Tensor } from '../../lib/kernels/tf_bf16';
import { hugePages, loadNativeBackend, thpMode } from '../../lib/native/load';
import { readStatus } from '../../lib/native/paths';

const MiB = 1 << 20, HUGE = 2 * MiB;
const usable = readStatus()?.ok === true && (thpMode() === 'madvise' || thpMode() === 'always') && process.env.GLM46V_HUGE_PAGES !== '0';

describe('huge pages for large weights (lib/native/load.ts hugePages)', () => {
  it(usable ? 'advises the mapping of an allocation made between mark and advise, and nothing without one' : 'is off here', () => {
    const h = hugePages();
    if (!usable) {
      expect(h, `no native build, transparent huge pages '${thpMode()}' or GLM46V_HUGE_PAGES=0`).to.equal(undefined);
      return;
    }
    expect(h).to.not.equal(undefined);
    const bytes = 44 * MiB; // glibc maps it on its own, untouched
    h!.mark();
    const buf = new Float32Array(bytes / 4);
    expect(h!.advise(8 * MiB), 'its mapping, rounded inward to whole 2 MiB pages').to.be.within(bytes - HUGE, bytes);
    h!.mark();
    expect(h!.advise(8 * MiB), 'nothing new since the mark').to.equal(0);
    expect(h!.advise(8 * MiB), 'no mark').to.equal(0);
    buf[0] = 1; // kept alive to here
  });

  if (usable) {
    it('tfBf16Tensor: a matrix made in place lies in advised memory', async () => {
      const prev = tf.getBackend();
      expect(loadNativeBackend().ok).to.equal(true);
      expect(await tf.setBackend('tensorflow')).to.equal(true);
      installKernelOverrides('tensorflow');
      try {
        const bytes = new Uint8Array(2 * 2560 * 4096); // 40 MiB of float32 (over glibc's largest mmap threshold), in 1 MiB chunks of bf16
        const h = hugePages()!, advise = h.advise;
        const advised: number[] = [];
        h.advise = (minBytes) => advised[advised.push(advise(minBytes)) - 1]!;
        try {
          tfBf16Tensor([2560, 4096], (offset, length) => bytes.subarray(offset, offset + length), MiB)!.dispose();
        } finally {
          h.advise = advise;
        }
        // at least the tensor's 40 MiB (what else was mapped meanwhile, e.g. by the JavaScript heap, is advised too)
        expect(advised, 'one call').to.have.length(1);
        expect(advised[0]).to.be.at.least(40 * MiB - HUGE);
      } finally {
        await tf.setBackend(prev);
      }
    });
  }
});
