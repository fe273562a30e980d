// Every command of the server, as declared by the command files.
import type { CommandSpec } from './context.js';
import { jobCommands } from './jobs.js';
import { importCommands } from './import.js';
import { getjobCommands } from './getjob.js';
import { ackCommands } from './acks.js';
import { queueCommands } from './queues.js';
import { scanCommands } from './scan.js';
import { clusterCommands } from './cluster.js';
import { adminCommands } from './admin.js';

export const ALL_COMMANDS: readonly CommandSpec[] = [
  ...adminCommands,
  ...clusterCommands,
  ...jobCommands,
  ...importCommands,
  ...getjobCommands,
  ...ackCommands,
  ...queueCommands,
  ...scanCommands,
];
