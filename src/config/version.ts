// What this server says it is: INFO, HELLO, --version and the log's first line.
export const VERSION = '1.0-rc1';
export const SERVER_NAME = 'disque-ts';
