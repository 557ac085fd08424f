/**
 * Private Redis topologies for the scale suite, on free loopback ports with private directories under a
 * temporary directory: a Redis Cluster (masters + replicas, created with `redis-cli --cluster create`)
 * and a Sentinel group (one master, one replica, three sentinels). Every process started is recorded in
 * the run's pid file (see scale-setup.ts), so the global teardown kills it even if a test file crashed.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

const PID_FILE = process.env.BANANAS_SCALE_PIDS;

/** Notes a process this run started, for the scale setup to kill should the run itself be killed. */
export function recordPid(pid: number | undefined): void {
  if (PID_FILE && pid !== undefined) appendFileSync(PID_FILE, `${pid}\n`);
}

/** A data node's loopback-only, persistence-off arguments, its files in `dir`. */
function localDataArgs(dir: string): string[] {
  return ['--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const takenPorts = new Set<number>();

/**
 * A free port below 55535 whose cluster bus port (port + 10000) is free too. Ports handed out by this
 * process are not handed out again.
 */
export async function freeClusterPort(): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (takenPorts.has(port) || takenPorts.has(port + 10_000)) continue;
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) {
      takenPorts.add(port);
      takenPorts.add(port + 10_000);
      return port;
    }
  }
  throw new Error('no free port pair for a cluster node');
}

/** How to reach a node: its password, and the CA of its certificate for a TLS-only node. */
export interface NodeAuth {
  password?: string;
  ca?: Buffer;
}

/** A short-lived client for one node, failing fast. */
export function nodeClient(port: number, auth: NodeAuth = {}): Redis {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    password: auth.password,
    ...(auth.ca ? { tls: { ca: auth.ca } } : {}),
    lazyConnect: true,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2000,
  });
  client.on('error', () => undefined);
  return client;
}

async function withNode<T>(
  port: number,
  auth: NodeAuth | undefined,
  fn: (c: Redis) => Promise<T>,
): Promise<T> {
  const client = nodeClient(port, auth);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

/** Polls `check` until true; throws `what` on timeout. Errors count as "not yet". */
export async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
      );
    }
    await sleep(100);
  }
}

/** One redis-server process with its own directory. */
class Node {
  child?: ChildProcess;

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly args: string[],
  ) {}

  start(): void {
    this.child = spawn('redis-server', this.args, { stdio: 'ignore', cwd: this.dir });
    recordPid(this.child.pid);
  }

  get alive(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT');
    child.kill(signal);
    await Promise.race([exited, sleep(5000)]);
  }
}

export interface ClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /** cluster-node-timeout: how long a master may be unreachable before its replica takes over. */
  nodeTimeoutMs?: number;
  /** Extra redis-server arguments for every node (e.g. AOF). */
  args?: string[];
  password?: string;
  /** TLS only (`--port 0`, `--tls-port`, TLS on the cluster bus and replication), certificates from `dir`. */
  tls?: { dir: string };
}

/** A Redis Cluster of `masters` masters with `replicasPerMaster` replicas each. */
export class LocalCluster {
  private constructor(
    readonly nodes: Node[],
    readonly root: string,
    readonly password: string | undefined,
    readonly auth: NodeAuth = {},
  ) {}

  static async start(options: ClusterOptions = {}): Promise<LocalCluster> {
    const masters = options.masters ?? 3;
    const replicas = options.replicasPerMaster ?? 1;
    const root = mkdtempSync(join(tmpdir(), 'bananas-cluster-'));
    const nodes: Node[] = [];
    const tls = options.tls && {
      ca: readFileSync(join(options.tls.dir, 'ca.crt')),
      args: (port: number) => [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--tls-cluster',
        'yes',
        '--tls-replication',
        'yes',
        '--tls-cert-file',
        join(options.tls!.dir, 'server.crt'),
        '--tls-key-file',
        join(options.tls!.dir, 'server.key'),
        '--tls-ca-cert-file',
        join(options.tls!.dir, 'ca.crt'),
        '--tls-auth-clients',
        'optional',
      ],
    };
    const auth: NodeAuth = { password: options.password, ca: tls?.ca };
    const cluster = new LocalCluster(nodes, root, options.password, auth);
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        const port = await freeClusterPort();
        const dir = mkdtempSync(join(root, `node-${port}-`));
        const passwords = options.password
          ? ['--requirepass', options.password, '--masterauth', options.password]
          : [];
        const node = new Node(port, dir, [
          ...(tls ? tls.args(port) : ['--port', String(port)]),
          ...localDataArgs(dir),
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, 'nodes.conf'),
          '--cluster-node-timeout',
          String(options.nodeTimeoutMs ?? 2000),
          // A replica that lost its master only a moment ago may always take over.
          '--cluster-replica-validity-factor',
          '0',
          ...passwords,
          ...(options.args ?? []),
        ]);
        nodes.push(node);
        node.start();
      }
      for (const node of nodes) {
        await until(
          () => withNode(node.port, auth, async (c) => (await c.ping()) === 'PONG'),
          10_000,
          `redis-server on port ${node.port}`,
        );
      }
      const create = spawnSync(
        'redis-cli',
        [
          ...(options.password ? ['-a', options.password, '--no-auth-warning'] : []),
          ...(options.tls ? ['--tls', '--cacert', join(options.tls.dir, 'ca.crt')] : []),
          '--cluster',
          'create',
          ...nodes.map((n) => `127.0.0.1:${n.port}`),
          '--cluster-replicas',
          String(replicas),
          '--cluster-yes',
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      if (create.status !== 0) {
        throw new Error(`redis-cli --cluster create failed: ${create.stderr || create.stdout}`);
      }
      await cluster.waitHealthy(masters, masters * replicas, 30_000);
      if (replicas > 0) await cluster.waitReplicating(replicas, 30_000);
      return cluster;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  /** Seed nodes for a `redis+cluster://` URL (the first three nodes). */
  url(options: { password?: string; tls?: boolean } = {}): string {
    const password = options.password ?? this.password;
    const auth = password ? `:${encodeURIComponent(password)}@` : '';
    const hosts = this.nodes
      .slice(0, 3)
      .map((n) => `127.0.0.1:${n.port}`)
      .join(',');
    return `redis${options.tls ? 's' : ''}+cluster://${auth}${hosts}`;
  }

  /** Waits until every live node says cluster_state:ok and sees `masters` masters and `replicas` connected replicas. */
  async waitHealthy(masters: number, replicas: number, timeoutMs: number): Promise<void> {
    await until(
      async () => {
        let seenMasters = 0;
        let seenReplicas = 0;
        for (const node of this.nodes.filter((n) => n.alive)) {
          const ok = await withNode(node.port, this.auth, async (c) => {
            const info = (await c.call('CLUSTER', 'INFO')) as string;
            if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
            const replication = await c.info('replication');
            if (/role:master/.test(replication)) seenMasters++;
            else if (/master_link_status:up/.test(replication)) seenReplicas++;
            else return false;
            return true;
          });
          if (!ok) return false;
        }
        return seenMasters === masters && seenReplicas === replicas;
      },
      timeoutMs,
      `cluster_state:ok on every node with ${masters} masters and ${replicas} replicas`,
    );
  }

  /**
   * Waits until every master's replicas acknowledge its writes (WAIT): a replica can report its link up
   * while its first sync is still pending, and a failover before then would lose everything.
   */
  async waitReplicating(replicasPerMaster: number, timeoutMs: number): Promise<void> {
    const pending = new Set(this.nodes.filter((n) => n.alive));
    const masters: Node[] = [];
    for (const node of pending) if (await this.isMaster(node)) masters.push(node);
    for (const master of masters) {
      // A key in one of this master's slots.
      let probe: string | undefined;
      for (let i = 0; i < 10_000 && probe === undefined; i++) {
        const key = `replication-probe:{${i}}`;
        if ((await this.masterOf(key)) === master) probe = key;
      }
      if (probe === undefined) throw new Error(`no key found for the master on port ${master.port}`);
      const key = probe;
      await until(
        () =>
          withNode(master.port, this.auth, async (c) => {
            await c.set(key, '1', 'PX', 60_000);
            return Number(await c.call('WAIT', replicasPerMaster, 1000)) >= replicasPerMaster;
          }),
        timeoutMs,
        `the replicas of the master on port ${master.port} to acknowledge its writes`,
      );
    }
  }

  /** The node that is master of `key`'s hash slot now. */
  async masterOf(key: string): Promise<Node> {
    for (const node of this.nodes.filter((n) => n.alive)) {
      const found = await withNode(node.port, this.auth, async (c) => {
        const slot = Number(await c.call('CLUSTER', 'KEYSLOT', key));
        const slots = (await c.call('CLUSTER', 'SLOTS')) as Array<
          [number, number, [string, number, ...unknown[]]]
        >;
        const range = slots.find(([from, to]) => slot >= from && slot <= to);
        return range ? range[2][1] : undefined;
      }).catch(() => undefined);
      if (found !== undefined) {
        const node = this.nodes.find((n) => n.port === found);
        if (node) return node;
      }
    }
    throw new Error(`no master found for ${key}`);
  }

  /** Whether `node` is a master now (asking the node itself). */
  async isMaster(node: Node): Promise<boolean> {
    return withNode(node.port, this.auth, async (c) => /role:master/.test(await c.info('replication')));
  }

  /** The replicas of the master `node`. */
  async replicasOf(node: Node): Promise<Node[]> {
    const out: Node[] = [];
    for (const other of this.nodes.filter((n) => n !== node && n.alive)) {
      const info = await withNode(other.port, this.auth, (c) => c.info('replication'));
      if (new RegExp(`master_port:${node.port}\\b`).test(info)) out.push(other);
    }
    return out;
  }

  async destroy(): Promise<void> {
    for (const node of this.nodes) await node.kill();
    rmSync(this.root, { recursive: true, force: true });
  }
}

export interface SentinelOptions {
  masterName?: string;
  downAfterMs?: number;
  failoverTimeoutMs?: number;
  /** Extra redis-server arguments for the master and the replica. */
  args?: string[];
}

/** One master, one replica and three sentinels watching them. */
export class LocalSentinelGroup {
  readonly masterName: string;

  private constructor(
    readonly master: Node,
    readonly replica: Node,
    readonly sentinels: Node[],
    readonly root: string,
    masterName: string,
  ) {
    this.masterName = masterName;
  }

  static async start(options: SentinelOptions = {}): Promise<LocalSentinelGroup> {
    const masterName = options.masterName ?? 'bananas-master';
    const root = mkdtempSync(join(tmpdir(), 'bananas-sentinel-'));
    const dataArgs = (port: number, dir: string) => [
      '--port',
      String(port),
      ...localDataArgs(dir),
      ...(options.args ?? []),
    ];
    const started: Node[] = [];
    try {
      const masterPort = await freeClusterPort();
      const masterDir = mkdtempSync(join(root, 'master-'));
      const master = new Node(masterPort, masterDir, dataArgs(masterPort, masterDir));
      master.start();
      started.push(master);
      const replicaPort = await freeClusterPort();
      const replicaDir = mkdtempSync(join(root, 'replica-'));
      const replica = new Node(replicaPort, replicaDir, [
        ...dataArgs(replicaPort, replicaDir),
        '--replicaof',
        '127.0.0.1',
        String(masterPort),
      ]);
      replica.start();
      started.push(replica);
      const sentinels: Node[] = [];
      for (let i = 0; i < 3; i++) {
        const port = await freeClusterPort();
        const dir = mkdtempSync(join(root, `sentinel-${port}-`));
        const conf = join(dir, 'sentinel.conf');
        writeFileSync(
          conf,
          [
            `port ${port}`,
            'bind 127.0.0.1',
            `dir ${dir}`,
            `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
            `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1000}`,
            `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs ?? 3000}`,
            `sentinel parallel-syncs ${masterName} 1`,
            '',
          ].join('\n'),
        );
        const sentinel = new Node(port, dir, [conf, '--sentinel']);
        sentinel.start();
        started.push(sentinel);
        sentinels.push(sentinel);
      }
      const group = new LocalSentinelGroup(master, replica, sentinels, root, masterName);
      await group.waitReady(30_000);
      return group;
    } catch (err) {
      for (const node of started) await node.kill();
      rmSync(root, { recursive: true, force: true });
      throw err;
    }
  }

  url(): string {
    return `redis+sentinel://${this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${this.masterName}`;
  }

  /** The master's port as the sentinels report it (asks the first sentinel that answers). */
  async currentMasterPort(): Promise<number> {
    for (const sentinel of this.sentinels.filter((s) => s.alive)) {
      const addr = await withNode(sentinel.port, undefined, (c) =>
        c.call('SENTINEL', 'get-master-addr-by-name', this.masterName),
      ).catch(() => null);
      if (Array.isArray(addr)) return Number(addr[1]);
    }
    throw new Error('no sentinel answered');
  }

  /** Replica in sync, and every sentinel knows the replica and the two other sentinels. */
  async waitReady(timeoutMs: number): Promise<void> {
    await until(
      async () =>
        /master_link_status:up/.test(
          await withNode(this.replica.port, undefined, (c) => c.info('replication')),
        ),
      timeoutMs,
      'the replica to sync',
    );
    await until(
      async () => {
        for (const sentinel of this.sentinels) {
          const ok = await withNode(sentinel.port, undefined, async (c) => {
            const replicas = (await c.call('SENTINEL', 'replicas', this.masterName)) as unknown[];
            const others = (await c.call('SENTINEL', 'sentinels', this.masterName)) as unknown[];
            return replicas.length === 1 && others.length === 2;
          });
          if (!ok) return false;
        }
        return true;
      },
      timeoutMs,
      'every sentinel to know the replica and the other sentinels',
    );
  }

  async destroy(): Promise<void> {
    for (const node of [...this.sentinels, this.replica, this.master]) await node.kill();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** True when `openssl` is on PATH (needed by {@link makeCertificates}). */
export function hasOpenssl(): boolean {
  return spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
}

/** A throwaway CA and a server certificate for 127.0.0.1/localhost in `dir` (ca.crt, server.crt/key). */
export function makeCertificates(dir: string): void {
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=bananas-scale-ca',
  ]);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=bananas-scale-server',
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  ]);
}
