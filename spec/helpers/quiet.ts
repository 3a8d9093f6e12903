// Runs fn with process.stdout / stderr writes dropped: a command's progress lines stay out of the spec output.
export async function quiet<T>(fn: () => Promise<T>): Promise<T> {
  const [w1, w2] = [process.stdout.write, process.stderr.write];
  process.stdout.write = process.stderr.write = (() => true) as typeof process.stdout.write;
  try {
    return await fn();
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}
