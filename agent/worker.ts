// The agent's BullMQ worker: each job is parsed with its schema, refused if its migration has
// ended, run by its handler with a logger and progress of its own, and a failure goes back as
// data ({code, message}); final ones are never retried.
import { UnrecoverableError, Worker, type Job as BullJob } from 'bullmq';
import { JobSchema, type Job } from '../api/v1alpha1/jobs.ts';
import { FerryError, encodeJobFailure, formatFailure, jobFailureOf } from '../lib/errors.ts';
import { keyspace } from '../lib/keyspace.ts';
import { isFenced } from '../lib/fences.ts';
import { isLive } from '../lib/live-migrations.ts';
import { connectionLost, connectRedis, errorLatch, logOutages, redisWhere } from '../lib/redis.ts';
import type { AgentContext } from './context.ts';
import { dispatch } from './handlers.ts';
import { runInScope, StepScope } from '../lib/step-scope.ts';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Runs a step, stopped at its deadline if it has one: its processes are killed (lib/step-scope.ts)
 * and it fails at once with StepDeadline, whatever it was waiting for; the controller rolls back.
 */
async function withDeadline(ctx: AgentContext, job: Job): Promise<unknown> {
  const scope = new StepScope();
  const run = runInScope(scope, () => dispatch(ctx, job));
  const deadlineMs = 'deadlineMs' in job ? job.deadlineMs : undefined;
  if (!deadlineMs) return run;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>(
    (resolve) => (timer = setTimeout(() => resolve('expired'), deadlineMs)),
  );
  // The abandoned run may still settle later: its outcome is nobody's.
  run.catch(() => undefined);
  try {
    if ((await Promise.race([run.then(() => 'done' as const), expired])) === 'done') return await run;
    // Past the deadline: the step may have ended while this agent was paused, its exit not yet
    // read (the timer fires first when the agent runs again). A moment for that, then stop it.
    const settled = await Promise.race([
      run.then(
        () => true,
        () => true,
      ),
      sleep(DEADLINE_SETTLE_MS).then(() => false),
    ]);
    if (settled) return await run;
    const why = `${job.kind} ran past its deadline of ${Math.round(deadlineMs / 1000)}s while the source was frozen`;
    const killed = scope.stop(why);
    ctx.log.error({ deadlineMs, killed }, `${why}: stopped`);
    const what = killed ? ` (${killed} process${killed === 1 ? '' : 'es'} killed)` : '';
    throw new FerryError('StepDeadline', `${why}; stopped it${what}`);
  } finally {
    clearTimeout(timer);
  }
}

/** How long a step past its deadline gets to report an end it may already have reached. */
const DEADLINE_SETTLE_MS = 1500;

/** The job, parsed and still wanted, or an unrecoverable error saying why not. */
async function acceptJob(ctx: AgentContext, data: unknown): Promise<Job> {
  const parsed = JobSchema.safeParse(data);
  if (!parsed.success) {
    // A payload that fails its schema will fail the same way every time: never retry it.
    const message = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new UnrecoverableError(encodeJobFailure({ code: 'InvalidInput', message }));
  }
  const job = parsed.data;
  // An agent acts only while it holds its lease, and not at all once an operator fenced its node.
  if (!ctx.lease.held())
    throw new Error(
      encodeJobFailure({
        code: 'ClusterUnavailable',
        message: `${ctx.config.node}'s lease is not held: the job is tried again once it is`,
      }),
    );
  if (await isFenced(ctx.redis, ctx.config.cluster, ctx.config.node))
    throw new UnrecoverableError(
      encodeJobFailure({
        code: 'Fenced',
        message: `${ctx.config.node} is fenced (ferry node unfence ${ctx.config.node} lets it act again)`,
      }),
    );
  // A job of a migration that ended is never run: a node that comes back after being taken for
  // dead finds its stalled jobs again, and must not restore or resume anything from them.
  if ('migration' in job && !(await isLive(ctx.redis, ctx.config.cluster, job.migration.uid)))
    throw new UnrecoverableError(
      encodeJobFailure({
        code: 'InvalidInput',
        message: `migration ${job.migration.name} has ended; its ${job.kind} job is not run`,
      }),
    );
  return job;
}

/** The context a job runs in: its own logger, and progress reported to BullMQ a few times a second. */
function jobContext(ctx: AgentContext, bullJob: BullJob, job: Job): AgentContext {
  const log = ctx.log.child({
    job: bullJob.id,
    kind: job.kind,
    ...('migration' in job ? { migration: job.migration.name } : {}),
  });
  let last = 0;
  const progress = (p: Record<string, number | string>) => {
    const now = Date.now();
    if (now - last < 200) return; // progress is for people: a few updates a second is plenty
    last = now;
    void bullJob.updateProgress(p).catch(() => undefined);
  };
  return { ...ctx, log, progress };
}

/** Counts the migration's jobs running here while `fn` runs (the watchdog leaves those alone). */
async function inFlight<T>(ctx: AgentContext, uid: string | undefined, fn: () => Promise<T>): Promise<T> {
  if (!uid) return fn();
  ctx.inFlight.set(uid, (ctx.inFlight.get(uid) ?? 0) + 1);
  try {
    return await fn();
  } finally {
    const n = ctx.inFlight.get(uid)! - 1;
    if (n) ctx.inFlight.set(uid, n);
    else ctx.inFlight.delete(uid);
  }
}

/**
 * Jobs running in this process, by id. A job whose lock lapsed while this agent was paused is
 * handed out again as stalled, to this same agent, while its first run still goes on: the second
 * run waits for the first and reports its result, rather than doing the step twice at once.
 */
const running = new Map<string, Promise<unknown>>();

async function runJob(ctx: AgentContext, bullJob: BullJob): Promise<unknown> {
  const data = bullJob.data as { migration?: { uid?: unknown } } | undefined;
  const uid = typeof data?.migration?.uid === 'string' ? data.migration.uid : undefined;
  const id = bullJob.id ? `${ctx.config.node}/${bullJob.id}` : undefined;
  const first = id ? running.get(id) : undefined;
  if (first) {
    ctx.log.warn(
      { job: bullJob.id },
      'job handed out again while its first run goes on: waiting for that run',
    );
    return first;
  }
  const run = inFlight(ctx, uid, () => runAccepted(ctx, bullJob));
  if (!id) return run;
  running.set(id, run);
  try {
    return await run;
  } finally {
    if (running.get(id) === run) running.delete(id);
  }
}

async function runAccepted(ctx: AgentContext, bullJob: BullJob): Promise<unknown> {
  const job = await acceptJob(ctx, bullJob.data);
  const jctx = jobContext(ctx, bullJob, job);
  jctx.log.info('job started');
  try {
    const result = await withDeadline(jctx, job);
    jctx.log.info('job done');
    return result;
  } catch (err) {
    const failure = jobFailureOf(err);
    // An error ferry did not expect carries its stack: where it came from is the first question.
    const stack = err instanceof FerryError ? {} : { stack: (err as Error).stack };
    jctx.log.error({ reason: formatFailure(failure), ...stack }, 'job failed');
    // The failure travels as data (code and message); final ones are never retried.
    if (err instanceof FerryError && err.final) throw new UnrecoverableError(encodeJobFailure(failure));
    throw new Error(encodeJobFailure(failure), { cause: err });
  }
}

export function startWorker(ctx: AgentContext): Worker {
  const { config } = ctx;
  const worker = new Worker(keyspace.agentQueue(config.node), (bullJob) => runJob(ctx, bullJob), {
    connection: connectRedis(config.redis, { forWorker: true, report: logOutages(ctx.log) }),
    prefix: keyspace.queuePrefix(config.cluster),
    concurrency: 4,
    // A job an agent was paused past its lock is handed out again after the next stall check:
    // seconds, not BullMQ's 30 s (test clusters notice a killed agent's jobs faster still).
    ...(config.faultHooks
      ? { lockDuration: 8000, stalledInterval: 4000 }
      : { lockDuration: 15_000, stalledInterval: 5000 }),
  });
  // A lost Redis makes the worker report every reconnection: said once per outage, not each time.
  const lost = errorLatch(redisWhere(config.redis), logOutages(ctx.log));
  worker.on('error', (err) => {
    if (connectionLost(err)) lost(err);
    else ctx.log.error({ err: err.message }, 'worker error');
  });
  return worker;
}
