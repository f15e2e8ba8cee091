// The node agent: a BullMQ worker on its node's queue, an SSH server for peers, and a heartbeat
// that registers the node. Started by `ferry cluster up` inside the node's network namespace.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UnrecoverableError, Worker } from 'bullmq';
import { AgentConfigSchema, type AgentConfig, type Peer } from '../api/v1alpha1/cluster.ts';
import { JobSchema } from '../api/v1alpha1/jobs.ts';
import { FerryError, encodeJobFailure, errorMessage, formatFailure, jobFailureOf } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';
import { createLogger, type Logger } from '../lib/logger.ts';
import { fsLayout } from '../lib/paths.ts';
import { connectRedis } from '../lib/redis.ts';
import { keyspace } from '../lib/keyspace.ts';
import { readyNodes, registerNode, unregisterNode } from '../lib/node-registry.ts';
import { agentConfigFromEnv, peersFromRegistry, publicKeyLine } from './kube/node-env.ts';
import type { AgentContext } from './context.ts';
import { FaultHooks } from './fault-hooks.ts';
import { dispatch } from './handlers.ts';
import { Runc } from './runtime/runc.ts';
import { startSshServer } from './transfer/ssh-server.ts';
import { TunnelPermits } from './transfer/tunnels.ts';
import { startDumpReceiver } from './page-streams.ts';
import { isLive, transferExpected } from '../lib/live-migrations.ts';
import { probeLazyPages } from './criu/lazy-probe.ts';
import { SelfService } from './self-service.ts';
import { RedisMigrationStore } from '../lib/store/redis-store.ts';
import type { MigrationInput } from '../api/v1alpha1/migration.ts';
import { sweepEnded } from './gc.ts';

async function criuProblem(criu: string): Promise<string | undefined> {
  const r = await exec(criu, ['check']).catch((err: unknown) => ({
    code: -1,
    stdout: '',
    stderr: errorMessage(err),
  }));
  return r.code === 0
    ? undefined
    : `criu check failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`;
}

async function criuFeature(criu: string, feature: string): Promise<boolean> {
  const r = await exec(criu, ['check', '--feature', feature]).catch(() => ({ code: -1 }));
  return r.code === 0;
}

/** Why PostCopy cannot run here: no userfaultfd, or a real lazy-pages round trip fails (criu/lazy-probe.ts). */
async function lazyPagesProblem(config: AgentConfig, log: Logger): Promise<string | undefined> {
  if (!(await criuFeature(config.criuPath, 'uffd-noncoop'))) {
    log.warn('PostCopy unavailable: criu check --feature uffd-noncoop fails');
    return '`criu check --feature uffd-noncoop` fails (no userfaultfd)';
  }
  await mkdir(config.imagesDir, { recursive: true, mode: 0o700 });
  const problem = await probeLazyPages(config.criuPath, config.imagesDir);
  if (!problem) return undefined;
  // Test clusters (fault hooks on) still offer PostCopy, so that its failure path (a restore that
  // cannot get its pages rolls back to the source) runs in CI on machines where it fails.
  log.warn(
    { problem, offeredAnyway: config.faultHooks },
    'PostCopy unavailable: CRIU lazy pages fail their self-test',
  );
  return config.faultHooks ? undefined : `the lazy-pages self-test failed: ${problem}`;
}

async function criuVersion(criu: string): Promise<string> {
  const r = await exec(criu, ['--version']).catch(() => ({ stdout: '' }));
  return /Version: (\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
}

export async function startAgent(
  config: AgentConfig,
  log: Logger,
  opts: {
    /** Every agent holds the same key (Kubernetes); peers come from the node registry. */
    sharedKey?: boolean;
    /** Where a container's own request to move (self-checkpoint) becomes a Migration. */
    requestMigration: (m: MigrationInput) => Promise<void>;
  },
) {
  process.umask(0o077); // images, snapshots' metadata and logs are for root only
  log.info({ pid: process.pid }, 'agent starting: checking CRIU');
  const redis = connectRedis(config.redis);
  const lazyProblem = await lazyPagesProblem(config, log);
  const runc = new Runc(config.runcRoot, config.criuPath);
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
    self: new SelfService({
      node: config.node,
      cgroupParent: config.cgroupParent,
      runDir: config.runDir,
      log,
      containerPid: async (container) => (await runc.state(container))?.pid,
      requestMigration: opts.requestMigration,
    }),
  };
  // What ended migrations left here (this node was gone as they ended, or died cleaning up).
  void sweepEnded(ctx).catch((err: Error) => log.warn({ err: err.message }, 'start-up sweep failed'));
  // Containers already on the node (an agent restart) get their self-service socket back.
  for (const c of await ctx.runc.list().catch(() => [])) await ctx.self.listen(c.id).catch(() => undefined);
  if (ctx.criuProblem) log.error({ problem: ctx.criuProblem }, 'CRIU does not work on this node');
  const version = ctx.criuVersion;

  const sharedPublicKey = opts.sharedKey ? publicKeyLine(ctx.privateKey) : undefined;
  const writePeers = async (peers: Peer[]) => {
    await mkdir(path.dirname(config.peersFile), { recursive: true, mode: 0o700 });
    await writeFile(`${config.peersFile}.new`, JSON.stringify(peers), { mode: 0o600 });
    await rename(`${config.peersFile}.new`, config.peersFile);
  };
  if (sharedPublicKey)
    await writePeers([
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

  const worker = new Worker(
    keyspace.agentQueue(config.node),
    async (bullJob) => {
      const parsed = JobSchema.safeParse(bullJob.data);
      if (!parsed.success) {
        // A payload that fails its schema will fail the same way every time: never retry it.
        const message = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
        throw new UnrecoverableError(encodeJobFailure({ code: 'InvalidInput', message }));
      }
      const job = parsed.data;
      // A job of a migration that ended is never run: a node that comes back after being taken
      // for dead finds its stalled jobs again, and must not restore or resume anything from them.
      if ('migration' in job && !(await isLive(redis, config.cluster, job.migration.uid)))
        throw new UnrecoverableError(
          encodeJobFailure({
            code: 'InvalidInput',
            message: `migration ${job.migration.name} has ended; its ${job.kind} job is not run`,
          }),
        );
      const jlog = log.child({
        job: bullJob.id,
        kind: job.kind,
        ...('migration' in job ? { migration: job.migration.name } : {}),
      });
      let last = 0;
      const jctx: AgentContext = {
        ...ctx,
        log: jlog,
        progress: (p) => {
          const now = Date.now();
          if (now - last < 200) return; // progress is for people: a few updates a second is plenty
          last = now;
          void bullJob.updateProgress(p).catch(() => undefined);
        },
      };
      jlog.info('job started');
      try {
        const result = await dispatch(jctx, job);
        jlog.info('job done');
        return result;
      } catch (err) {
        const failure = jobFailureOf(err);
        // An error ferry did not expect carries its stack: where it came from is the first question.
        jlog.error(
          {
            reason: formatFailure(failure),
            ...(err instanceof FerryError ? {} : { stack: (err as Error).stack }),
          },
          'job failed',
        );
        // The failure travels as data (code and message); final ones are never retried.
        if (err instanceof FerryError && err.final) throw new UnrecoverableError(encodeJobFailure(failure));
        throw new Error(encodeJobFailure(failure), { cause: err });
      }
    },
    {
      connection: connectRedis(config.redis, { forWorker: true }),
      prefix: keyspace.queuePrefix(config.cluster),
      concurrency: 4,
      // Test clusters (fault hooks on) notice a killed agent's jobs in seconds, not BullMQ's 30 s.
      ...(config.faultHooks ? { lockDuration: 8000, stalledInterval: 4000 } : {}),
    },
  );
  worker.on('error', (err) => log.error({ err: err.message }, 'worker error'));

  const beat = async () => {
    const info = {
      node: config.node,
      address: config.address,
      sshPort: config.sshPort,
      criuVersion: version,
      criuProblem: ctx.criuProblem ?? null,
      features: ctx.features,
      labels: { 'kubernetes.io/hostname': config.node, ...config.labels },
      pid: process.pid,
      time: new Date().toISOString(),
    };
    await registerNode(redis, config.cluster, info, 6000).catch((err: Error) =>
      log.warn({ err: err.message }, 'heartbeat failed'),
    );
    if (sharedPublicKey)
      await readyNodes(redis, config.cluster)
        .then((nodes) => writePeers(peersFromRegistry(nodes, sharedPublicKey)))
        .catch((err: Error) => log.warn({ err: err.message }, 'cannot refresh peers from the registry'));
  };
  await beat();
  const timer = setInterval(() => void beat(), 2000);
  log.info({ node: config.node, criu: version }, 'agent ready');

  return {
    async stop() {
      clearInterval(timer);
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
  // Self-checkpoint requests land in the cluster's Redis store, which the local controller serves.
  const requests = new RedisMigrationStore(connectRedis(config.redis), config.cluster);
  const agent = await startAgent(config, log, {
    sharedKey: kube,
    requestMigration: async (m) => void (await requests.create(m)),
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
