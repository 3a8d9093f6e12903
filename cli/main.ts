// Entry point of the `glm46v` command: dispatches to one module per sub-command.
import { shutdownBackend } from '../lib/backend';
import { CliError } from './args';

type Command = { summary: string; run: (argv: string[]) => Promise<void> };

const COMMANDS: Record<string, () => Promise<Command>> = {
  generate: async () => (await import('./generate')).command,
  parity: async () => (await import('./parity')).command,
  finetune: async () => (await import('./finetune')).command,
  inspect: async () => (await import('./inspect')).command,
  setup: async () => (await import('./setup')).command,
  serve: async () => (await import('./serve')).command,
  web: async () => (await import('./web')).command,
};

function usage(): string {
  return [
    'usage: glm46v <command> [options]',
    '',
    'commands:',
    '  generate   stream an answer to a prompt with images or a video',
    '  parity     compare the model with a reference-tensor file from scripts/parity/',
    '  finetune   train on chat-format JSONL and save a Hugging Face checkpoint',
    '  inspect    print a checkpoint\'s config, parameter count and weights',
    '  setup      build the native TensorFlow backend (npm install runs it)',
    '  serve      an OpenAI-compatible chat completions server with tool calling',
    '  web        the browser page: ask the built-in model about a picture, on 127.0.0.1',
    '',
    'every command takes --verbose: TensorFlow\'s and tfjs\'s own start-up lines (also GLM46V_VERBOSE=1)',
    "run 'glm46v <command> --help' for a command's options",
  ].join('\n');
}

async function main(args: string[]): Promise<number> {
  if (args.includes('--verbose')) process.env.GLM46V_VERBOSE = '1';
  const [name, ...rest] = args.filter((a) => a !== '--verbose');
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`glm46v: unknown command '${name}'\n${usage()}\n`);
    return 2;
  }
  try {
    await (await load()).run(rest);
    return typeof process.exitCode === 'number' ? process.exitCode : 0; // a command may report failure without throwing
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`glm46v ${name}: ${e instanceof CliError ? msg : msg.split('\n')[0]}\n`);
    if (process.env.GLM46V_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return 1;
  } finally {
    shutdownBackend();
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
