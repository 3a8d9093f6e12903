// glm46v finetune (placeholder until its issue lands).
import { CliError } from './args';

export const command = {
  summary: 'finetune',
  async run(_argv: string[]): Promise<void> {
    throw new CliError('finetune is not implemented yet');
  },
};
