// The node agent: a BullMQ worker on its node's queue (worker.ts), an SSH server for peers, and a
// heartbeat that registers the node (heartbeat.ts). Started by `ferry cluster up` inside the node's network namespace.
import { readFile } from 'node:fs/promises';
import { AgentConfigSchema, type AgentConfig } from '../api/v1alpha1/cluster.ts';
import type { MigrationInput } from '../api/v1alpha1/migration.ts';
import { errorMessage } from '../lib/errors.ts';
import { keyspace } from '../lib/keyspace.ts';
import { transferExpected } from '../lib/live-migrations.ts';
import { createLogger, type Logger } from '../lib/logger.ts';
import { unregisterNode } from '../lib/node-registry.ts';
import { fsLayout, keptLogsDir } from '../lib/paths.ts';
import { connectRedis, logOutages } from '../lib/redis.ts';
import { RedisMigrationStore } from '../lib/store/redis-store.ts';
import type { AgentContext } from './context.ts';
import { criuFeature, criuProblem, criuVersion, lazyPagesProblem } from './criu/node-checks.ts';
import { CudaHelper } from './gpu/cuda-helper.ts';
import { FaultHooks } from './fault-hooks.ts';
import { Lease } from './fencing/lease.ts';
import { startWatchdog } from './fencing/watchdog.ts';
import { startHeartbeat, writePeers } from './heartbeat.ts';
import { agentConfigFromEnv, publicKeyLine } from './kube/node-env.ts';
import { startDumpReceiver } from './page-streams.ts';
import { Runc } from './runtime/runc.ts';
import { SelfService } from './self-service.ts';
import { startSshServer } from './transfer/ssh-server.ts';
import { TunnelPermits } from './transfer/tunnels.ts';
import { startWorker } from './worker.ts';

export interface AgentOptions {
  /** Every agent holds the same key (Kubernetes); peers come from the node registry. */
  sharedKey?: boolean;
  /** Where a container's own request to move (self-checkpoint) becomes a Migration. */
  requestMigration: (m: MigrationInput) => Promise<void>;
}

/** What every job handler is given: the node's configuration, runtime, CRIU's checks, services. */
async function createContext(config: AgentConfig, log: Logger, opts: AgentOptions): Promise<AgentContext> {
  const redis = connectRedis(config.redis, { report: logOutages(log) });
  const lazyProblem = await lazyPagesProblem(config, log);
  const runc = new Runc(config.runcRoot, config.criuPath, keptLogsDir(config.fsRoot));
  const ctx: AgentContext = {
    config,
    runc,
    layout: fsLayout(config.fsRoot, config.imagesDir),
    log,
    redis,
    privateKey: await readFile(config.keyFile, 'utf8'),
    hooks: new FaultHooks(
      config.faultHooks,
      redis,
      config.cluster,
      keyspace.agentHooks(config.cluster, config.node),
      log,
    ),
    criuProblem: await criuProblem(config.criuPath),
    criuVersion: await criuVersion(config.criuPath),
    features: {
      memDirtyTrack: await criuFeature(config.criuPath, 'mem_dirty_track'),
      lazyPages: !lazyProblem,
    },
    lazyPagesProblem: lazyProblem,
    progress: () => undefined,
    tunnels: new TunnelPermits(),
    background: new Map(),
    lease: new Lease(),
    inFlight: new Map(),
    cuda: new CudaHelper(config.cudaHelper),
    self: new SelfService({
      node: config.node,
      cgroupParent: config.cgroupParent,
      runDir: config.runDir,
      log,
      containerPid: async (container) => (await runc.state(container))?.pid,
      requestMigration: opts.requestMigration,
    }),
  };
  return ctx;
}

export async function startAgent(config: AgentConfig, log: Logger, opts: AgentOptions) {
  process.umask(0o077); // images, snapshots' metadata and logs are for root only
  log.info({ pid: process.pid }, 'agent starting: checking CRIU');
  const ctx = await createContext(config, log, opts);
  const { redis } = ctx;
  // Containers already on the node (an agent restart) get their self-service socket back.
  for (const c of await ctx.runc.list().catch(() => [])) await ctx.self.listen(c.id).catch(() => undefined);
  if (ctx.criuProblem) log.error({ problem: ctx.criuProblem }, 'CRIU does not work on this node');
  const version = ctx.criuVersion;

  const sharedPublicKey = opts.sharedKey ? publicKeyLine(ctx.privateKey) : undefined;
  if (sharedPublicKey)
    await writePeers(config.peersFile, [
      { node: config.node, address: config.address, sshPort: config.sshPort, publicKey: sharedPublicKey },
    ]);

  const ssh = await startSshServer({
    address: config.address,
    port: config.sshPort,
    hostKey: ctx.privateKey,
    peersFile: config.peersFile,
    receiver: {
      imagesDir: ctx.layout.images,
      incomingDir: ctx.layout.incoming,
      startPageServer: (uid, peerNode, into) => startDumpReceiver(ctx, uid, peerNode, into),
      expects: (uid, peerNode) =>
        transferExpected(redis, config.cluster, { target: config.node, uid, source: peerNode }),
    },
    permits: ctx.tunnels,
    log,
  });

  // The first beat takes the lease before any job runs; the watchdog then settles what the node's
  // records say it holds, at once after a lapse and every few seconds.
  const watchdog = startWatchdog(ctx);
  const heartbeat = await startHeartbeat(ctx, sharedPublicKey, watchdog.run);
  watchdog.run();
  const worker = startWorker(ctx);

  log.info({ node: config.node, criu: version }, 'agent ready');

  return {
    async stop() {
      heartbeat.stop();
      watchdog.stop();
      ctx.self.closeAll();
      await worker.close();
      ssh.close();
      await unregisterNode(redis, config.cluster, config.node).catch(() => undefined);
      redis.disconnect();
    },
  };
}

const USAGE = `usage: agent --config AGENT.json   a local cluster's node (written by ferry cluster up)
       agent --kube                 a Kubernetes node: configuration from the pod's environment
                                    (FERRY_NODE, FERRY_ADDRESS, FERRY_REDIS_URL, ...; see charts/ferry)`;

async function main() {
  const i = process.argv.indexOf('--config');
  const file = i > 0 ? process.argv[i + 1] : undefined;
  const kube = process.argv.includes('--kube');
  if (process.argv.includes('--help')) return console.log(USAGE);
  if (!file && !kube) {
    console.error(USAGE);
    process.exit(2);
  }
  const config = kube
    ? agentConfigFromEnv(process.env)
    : AgentConfigSchema.parse(JSON.parse(await readFile(file!, 'utf8')));
  const log = createLogger('agent').child({ node: config.node });
  // Self-checkpoint requests land in the cluster's Redis store, which the local controller serves;
  // its connection opens with the first request, not at every agent's start.
  let requests: RedisMigrationStore | undefined;
  const agent = await startAgent(config, log, {
    sharedKey: kube,
    requestMigration: async (m) => {
      requests ??= new RedisMigrationStore(
        connectRedis(config.redis, { report: logOutages(log) }),
        config.cluster,
      );
      await requests.create(m);
    },
  });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info({ sig }, 'stopping');
      void agent.stop().finally(() => process.exit(0));
    });
  }
}

if (import.meta.url === `file://${process.argv[1]}`)
  void main().catch((err) => {
    console.error(errorMessage(err));
    process.exit(1);
  });
