// Node built-ins with no browser meaning (child_process for ffmpeg, os, url, worker threads), as esbuild aliases:
// importing is harmless, using one fails naming it. The page never takes the paths that need them.
const refuse = (name: string) => () => {
  throw new Error(`${name} is not available in the browser`);
};
export const spawn = refuse('child_process.spawn'), execFileSync = refuse('child_process.execFileSync'), spawnSync = refuse('child_process.spawnSync');
export const cpus = () => [], tmpdir = () => '/tmp', platform = () => 'browser';
export const fileURLToPath = refuse('url.fileURLToPath'), pathToFileURL = refuse('url.pathToFileURL');
export const Worker = refuse('worker_threads.Worker'), isMainThread = true;
export default {};
