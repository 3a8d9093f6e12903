// glm46v parity (placeholder until its issue lands).
import { CliError } from './args';

export const command = {
  summary: 'parity',
  async run(_argv: string[]): Promise<void> {
    throw new CliError('parity is not implemented yet');
  },
};
