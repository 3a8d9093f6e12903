// glm46v inspect (placeholder until its issue lands).
import { CliError } from './args';

export const command = {
  summary: 'inspect',
  async run(_argv: string[]): Promise<void> {
    throw new CliError('inspect is not implemented yet');
  },
};
