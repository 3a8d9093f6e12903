// The processors' error class (style.md section 11): bad input files, configs and shapes, named in the message.
export class ProcessorError extends Error {
  override name = 'ProcessorError';
}
