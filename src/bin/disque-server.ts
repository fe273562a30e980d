#!/usr/bin/env node
// disque-server [config-file] [--directive value ...]
//
// As the reference: an optional config file path first, then directives
// given as --name value that override the file (`disque-server disque.conf
// --port 7712`).
import { Config, ConfigError, overridesFromArgv } from '../config/config.js';
import { Node } from '../server/node.js';
import { VERSION, SERVER_NAME } from '../config/version.js';

function usage(): never {
  process.stderr.write(
    `Usage: disque-server [/path/to/disque.conf] [options]\n` +
      `       disque-server -v or --version\n` +
      `       disque-server -h or --help\n\n` +
      `Examples:\n` +
      `       disque-server (run the server with default config)\n` +
      `       disque-server /etc/disque/7711.conf\n` +
      `       disque-server --port 7777\n` +
      `       disque-server /etc/mydisque.conf --loglevel verbose\n`,
  );
  process.exit(1);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '-v' || argv[0] === '--version') {
    process.stdout.write(`${SERVER_NAME} v=${VERSION} node=${process.versions.node}\n`);
    return;
  }
  if (argv[0] === '-h' || argv[0] === '--help') usage();

  const file = argv.length > 0 && !argv[0]!.startsWith('--') ? argv[0]! : null;
  let config: Config;
  try {
    config = Config.load(file, overridesFromArgv(file === null ? argv : argv.slice(1)));
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`\n*** FATAL CONFIG FILE ERROR ***\n${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }

  try {
    process.chdir(config.str('dir'));
  } catch (e) {
    process.stderr.write(`Can't chdir to '${config.str('dir')}': ${(e as Error).message}\n`);
    process.exit(1);
  }

  const node = new Node(config, { warmUp: true });
  node.exit = (code) => process.exit(code);
  process.on('uncaughtException', (e) => {
    // A bug must not take every client down with it: log and keep serving.
    node.log.warning(`Uncaught exception: ${e.stack ?? e}`);
  });
  process.on('unhandledRejection', (e) => {
    node.log.warning(`Unhandled rejection: ${(e as Error)?.stack ?? e}`);
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    node.log.warning(`Received ${signal} scheduling shutdown...`);
    node.shutdown().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  try {
    await node.start();
  } catch (e) {
    node.log.warning(`Failed to start: ${(e as Error).message}`);
    process.stderr.write(`Failed to start: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

void main();
