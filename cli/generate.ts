// glm46v generate (placeholder until its issue lands).
import { CliError } from './args';

export const command = {
  summary: 'generate',
  async run(_argv: string[]): Promise<void> {
    throw new CliError('generate is not implemented yet');
  },
};
