// Every configuration directive, declared once: its name, type, default,
// range and whether CONFIG SET may change it at runtime. Parsing the config
// file, CONFIG GET/SET, CONFIG REWRITE and INFO all derive from this table.
// Names and defaults are the reference's (disque.conf), plus the few this
// server adds (marked "ours").

export type DirectiveType = 'int' | 'memory' | 'bool' | 'enum' | 'string' | 'list';

export interface Directive {
  name: string;
  type: DirectiveType;
  /** Default as it would be written in a config file ('' for empty). */
  default: string;
  min?: number;
  max?: number;
  /** Allowed values for 'enum'. */
  values?: readonly string[];
  /** CONFIG SET can change it while running. */
  settable?: boolean;
  /** Several lines may give it; every line adds a value ('list' type). */
  repeatable?: boolean;
  /** Number of words after the name for 'list' entries (default: one or more). */
  words?: number;
  /** Not shown by CONFIG GET (secrets). */
  secret?: boolean;
  /** A password, or holds one: MONITOR and SLOWLOG show its CONFIG SET value as "(redacted)". */
  sensitive?: boolean;
  /** Extra check of a parsed value; returns an error message or undefined. */
  check?: (value: ConfigValue) => string | undefined;
  doc: string;
}

export type ConfigValue = number | boolean | string | string[];

const TLS_PROTOCOLS = ['tlsv1', 'tlsv1.1', 'tlsv1.2', 'tlsv1.3'];

function checkTlsProtocols(v: ConfigValue): string | undefined {
  const words = String(v).split(/\s+/).filter((w) => w !== '');
  const bad = words.find((w) => !TLS_PROTOCOLS.includes(w.toLowerCase()));
  return bad === undefined ? undefined : `'tls-protocols': unknown protocol '${bad}' (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)`;
}

const LOGLEVELS = ['debug', 'verbose', 'notice', 'warning'] as const;

export const DIRECTIVES: readonly Directive[] = [
  // Network
  { name: 'port', type: 'int', default: '7711', min: 0, max: 65535, doc: 'TCP port for clients; the cluster bus listens on port + cluster-port-offset.' },
  { name: 'bind', type: 'list', default: '', doc: 'Addresses to listen on (all interfaces when empty).' },
  { name: 'tcp-backlog', type: 'int', default: '511', min: 0, doc: 'Listen backlog.' },
  { name: 'timeout', type: 'int', default: '0', min: 0, settable: true, doc: 'Close a client idle for this many seconds (0: never).' },
  { name: 'tcp-keepalive', type: 'int', default: '0', min: 0, settable: true, doc: 'TCP keepalive period in seconds for clients (0: off).' },
  { name: 'unixsocket', type: 'string', default: '', doc: 'Unix socket path (accepted for compatibility; not used).' },
  { name: 'unixsocketperm', type: 'int', default: '0', min: 0, doc: 'Unix socket permissions (accepted for compatibility).' },
  { name: 'maxclients', type: 'int', default: '10000', min: 1, settable: true, doc: 'Maximum number of connected clients.' },
  { name: 'requirepass', type: 'string', default: '', settable: true, sensitive: true, doc: 'Clients must AUTH with this password first (CONFIG GET shows it, as in Redis).' },
  { name: 'rename-command', type: 'list', default: '', repeatable: true, words: 2, doc: 'rename-command <command> <new-name> ("" disables it).' },
  // TLS and protected mode (ours: Redis 6's directives, names and meanings)
  { name: 'protected-mode', type: 'bool', default: 'yes', settable: true, doc: 'With no requirepass and no bind set, refuse clients that connect from an address other than loopback (ours; from Redis).' },
  { name: 'tls-port', type: 'int', default: '0', min: 0, max: 65535, doc: 'TCP port for TLS clients (0: no TLS listener); with port 0 the node serves TLS only and the bus listens on tls-port + cluster-port-offset (ours; from Redis).' },
  { name: 'tls-cert-file', type: 'string', default: '', settable: true, doc: 'PEM certificate (chain) the node presents to clients and, with tls-cluster, to peers (ours; from Redis).' },
  { name: 'tls-key-file', type: 'string', default: '', settable: true, doc: 'PEM private key of tls-cert-file (ours; from Redis).' },
  { name: 'tls-key-file-pass', type: 'string', default: '', settable: true, secret: true, sensitive: true, doc: 'Passphrase of tls-key-file when it is encrypted (ours; from Redis).' },
  { name: 'tls-ca-cert-file', type: 'string', default: '', settable: true, doc: 'PEM CA certificates that client and peer certificates are checked against (ours; from Redis).' },
  { name: 'tls-ca-cert-dir', type: 'string', default: '', settable: true, doc: 'Folder of PEM CA certificates, read in addition to tls-ca-cert-file (ours; from Redis).' },
  { name: 'tls-auth-clients', type: 'enum', default: 'yes', values: ['yes', 'no', 'optional'], settable: true, doc: 'yes: clients must present a certificate the CA signed; optional: checked when given; no: not asked for (ours; from Redis).' },
  { name: 'tls-protocols', type: 'string', default: '', settable: true, check: checkTlsProtocols, doc: 'Protocol versions allowed, like "TLSv1.2 TLSv1.3" (default: both) (ours; from Redis).' },
  { name: 'tls-ciphers', type: 'string', default: '', settable: true, doc: 'OpenSSL cipher list for TLSv1.2 and below (ours; from Redis).' },
  { name: 'tls-ciphersuites', type: 'string', default: '', settable: true, doc: 'OpenSSL ciphersuites for TLSv1.3 (ours; from Redis).' },
  { name: 'tls-prefer-server-ciphers', type: 'bool', default: 'no', settable: true, doc: 'Pick the cipher by the server\'s order rather than the client\'s (ours; from Redis).' },
  { name: 'tls-cluster', type: 'bool', default: 'no', doc: 'Bus links use mutual TLS with the tls-* certificates; the cluster-secret handshake still runs inside (ours; from Redis).' },
  // HTTP: dashboard, /metrics, health (ours; docs/http-api.md)
  { name: 'http-port', type: 'int', default: '-1', min: -1, max: 65535, doc: 'HTTP port of the dashboard, /metrics and health checks, on the bind addresses (-1: the client port + 1000, skipped with a warning when that port is taken; 0: no HTTP) (ours).' },
  // ours
  { name: 'client-query-buffer-limit', type: 'memory', default: '1gb', min: 1024 * 1024, settable: true, doc: 'Max bytes buffered for one client request before the connection is closed (ours; from Redis).' },
  { name: 'proto-max-bulk-len', type: 'memory', default: '512mb', min: 1024 * 1024, settable: true, doc: 'Max length of one request argument (ours; from Redis).' },

  // General
  { name: 'daemonize', type: 'bool', default: 'no', doc: 'Accepted for compatibility; run under a supervisor instead.' },
  { name: 'pidfile', type: 'string', default: '', doc: 'Write the process ID to this file.' },
  { name: 'dir', type: 'string', default: './', settable: true, doc: 'Working directory: the nodes file and relative logfile live here.' },
  { name: 'loglevel', type: 'enum', default: 'notice', values: LOGLEVELS, settable: true, doc: 'debug, verbose, notice or warning.' },
  { name: 'logfile', type: 'string', default: '', doc: 'Log file ("" logs to standard output).' },
  { name: 'syslog-enabled', type: 'bool', default: 'no', doc: 'Accepted for compatibility; not used.' },
  { name: 'syslog-ident', type: 'string', default: 'disque', doc: 'Accepted for compatibility; not used.' },
  { name: 'syslog-facility', type: 'enum', default: 'local0', values: ['user', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'], doc: 'Accepted for compatibility; not used.' },
  { name: 'databases', type: 'int', default: '16', min: 1, doc: 'Accepted for compatibility; not used.' },
  { name: 'hz', type: 'int', default: '10', min: 1, max: 500, settable: true, doc: 'Frequency of background tasks (cron) per second.' },
  { name: 'activerehashing', type: 'bool', default: 'yes', settable: true, doc: 'Accepted for compatibility; not used.' },
  { name: 'include', type: 'list', default: '', repeatable: true, words: 1, doc: 'Read another config file at this point.' },

  // Memory
  { name: 'maxmemory', type: 'memory', default: '1gb', min: 0, settable: true, doc: 'Memory limit for jobs and queues (INFO used_memory): over 75% new jobs are replicated to other nodes only, over 95% safe eviction starts and commands that need memory are refused. At most 90% of the memory the machine (or cgroup) has, less 512mb.' },
  { name: 'maxmemory-policy', type: 'enum', default: 'acks', values: ['acks', 'noeviction'], settable: true, doc: 'acks: evict acknowledged jobs and delivered at-most-once jobs; noeviction: refuse instead.' },
  { name: 'maxmemory-samples', type: 'int', default: '5', min: 1, settable: true, doc: 'Accepted for compatibility; not used.' },

  // Persistence (the AOF directives of the reference drive the Redis journal)
  { name: 'appendonly', type: 'bool', default: 'no', settable: true, doc: 'Persist jobs to Redis (snapshot + journal) and reload them at restart.' },
  { name: 'appendfilename', type: 'string', default: 'disque.aof', doc: 'Accepted for compatibility; persistence goes to Redis (redis-url).' },
  { name: 'appendfsync', type: 'enum', default: 'everysec', values: ['always', 'everysec', 'no'], settable: true, doc: 'always/everysec: replies that changed jobs wait for Redis to confirm; no: writes are flushed at least every second.' },
  { name: 'no-appendfsync-on-rewrite', type: 'bool', default: 'no', settable: true, doc: 'Accepted for compatibility; not used.' },
  { name: 'auto-aof-rewrite-percentage', type: 'int', default: '100', min: 0, settable: true, doc: 'Accepted for compatibility; see snapshot-journal-max.' },
  { name: 'auto-aof-rewrite-min-size', type: 'memory', default: '64mb', min: 0, settable: true, doc: 'Accepted for compatibility; see snapshot-journal-max.' },
  { name: 'aof-rewrite-incremental-fsync', type: 'bool', default: 'yes', settable: true, doc: 'Accepted for compatibility; not used.' },
  { name: 'aof-load-truncated', type: 'bool', default: 'yes', settable: true, doc: 'Skip a damaged journal tail at load instead of refusing to start.' },
  { name: 'aof-enqueue-jobs-once', type: 'bool', default: 'no', settable: true, doc: 'At the next start, reload queued jobs into their queues (controlled restart), then turn this off.' },
  // ours
  { name: 'redis-url', type: 'string', default: 'redis://127.0.0.1:6379', settable: false, sensitive: true, doc: 'Redis that keeps the snapshots and journal (ours).' },
  { name: 'redis-key-prefix', type: 'string', default: 'disque:', settable: false, doc: 'Prefix of every key this node writes in Redis; each node adds its ID (ours).' },
  { name: 'redis-tls-ca-cert-file', type: 'string', default: '', settable: false, doc: 'With a rediss:// redis-url: PEM CA certificates that Redis\'s certificate is checked against (default: the system\'s) (ours).' },
  { name: 'redis-tls-cert-file', type: 'string', default: '', settable: false, doc: 'With a rediss:// redis-url: PEM client certificate for Redis servers that require one (ours).' },
  { name: 'redis-tls-key-file', type: 'string', default: '', settable: false, doc: 'With a rediss:// redis-url: PEM private key of redis-tls-cert-file (ours).' },
  { name: 'snapshot-journal-max', type: 'int', default: '100000', min: 1, settable: true, doc: 'Write a new snapshot when this many stored records are obsolete (deleted or superseded jobs), and at least as many as there are live jobs (ours).' },
  { name: 'snapshot-seconds', type: 'int', default: '3600', min: 0, settable: true, doc: 'Write a new snapshot at least this often when anything changed (0: only by size) (ours).' },

  // Cluster
  { name: 'cluster-config-file', type: 'string', default: 'nodes.conf', doc: 'Nodes file (in dir): this node ID and the known peers.' },
  { name: 'cluster-node-timeout', type: 'int', default: '15000', min: 0, settable: true, doc: 'Milliseconds without an answer before a peer is considered failing.' },
  // ours
  { name: 'cluster-port-offset', type: 'int', default: '10000', min: 1, max: 65535, doc: 'The cluster bus listens on port + this offset (ours; fixed to 10000 in the reference).' },
  { name: 'cluster-meet', type: 'list', default: '', repeatable: true, words: 1, doc: 'host:port of a node to meet at start-up; repeatable (ours).' },
  { name: 'cluster-secret', type: 'string', default: '', secret: true, sensitive: true, doc: 'Shared secret peers must prove in the bus handshake (HMAC, never sent) (ours).' },

  // Diagnostics
  { name: 'slowlog-log-slower-than', type: 'int', default: '10000', min: -1, settable: true, doc: 'Accepted for compatibility; not used.' },
  { name: 'slowlog-max-len', type: 'int', default: '128', min: 0, settable: true, doc: 'Accepted for compatibility; not used.' },
  { name: 'latency-monitor-threshold', type: 'int', default: '0', min: 0, settable: true, doc: 'Accepted for compatibility; not used.' },
  // ours
  { name: 'repl-trace-slower-than', type: 'int', default: '0', min: 0, settable: true, doc: 'Log (notice) the replication of each ADDJOB that waited at least this many ms: nodes picked, nodes added, each GOTJOB, the reply, in ms since the ADDJOB; 0: off (ours).' },
  { name: 'watchdog-period', type: 'int', default: '0', min: 0, settable: true, doc: 'Accepted for compatibility; not used.' },
  { name: 'client-output-buffer-limit', type: 'list', default: 'normal 0 0 0', repeatable: true, words: 4, settable: true, doc: 'client-output-buffer-limit <class> <hard> <soft> <soft-seconds>; a client over the hard limit is disconnected.' },
];

export const DIRECTIVE_BY_NAME: ReadonlyMap<string, Directive> = new Map(DIRECTIVES.map((d) => [d.name, d]));
