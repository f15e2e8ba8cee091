// Self-checkpoint, as the 2009 design let a process ask for its own: every container gets a unix
// socket at /run/ferry/ferry.sock (a per-container directory of the agent's, bind-mounted in).
// The agent identifies a caller by what the kernel says, never by what the request says: the
// socket it came in on names one container, and the kernel's socket table (sock_diag, through
// `ss` in that container's network namespace) names the peer process, whose cgroup must be that
// container's. A request becomes an ordinary Migration, visible like any other.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readlink, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { API_VERSION, NameSchema, type MigrationInput } from '../api/v1alpha1/migration.ts';
import { FerryError, errorMessage } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';
import type { Logger } from '../lib/logger.ts';
import { readChunks } from './transfer/read-chunks.ts';

export const SelfRequestSchema = z.strictObject({ action: z.literal('migrate'), target: NameSchema });

/** The host directory bind-mounted at /run/ferry in a container. */
export const selfDir = (runDir: string, container: string): string => path.join(runDir, 'self', container);

/** The pid on the other end of a unix socket, from `ss -xpn` output: the row whose peer is `inode`. Pure. */
export function peerPidFromSs(ssOutput: string, inode: string): number | undefined {
  for (const line of ssOutput.split('\n')) {
    const cols = line.trim().split(/\s+/);
    // Netid State Recv-Q Send-Q Local-path Local-inode Peer-path Peer-inode users:(...)
    const peerIdx = cols.findIndex((c, i) => i > 5 && c === inode && cols[i - 1] === '*');
    if (peerIdx < 0) continue;
    const pid = /pid=(\d+)/.exec(line)?.[1];
    if (pid) return Number(pid);
  }
  return undefined;
}

/** What the self-service needs of its agent: who it is, where containers run, and a way to ask. */
export interface SelfServiceDeps {
  node: string;
  cgroupParent: string;
  runDir: string;
  log: Logger;
  /** The host pid of a container's first process, whose network namespace names the caller. */
  containerPid: (container: string) => Promise<number | undefined>;
  /** The port to the Migration store the agent is given: a request becomes a Migration there. */
  requestMigration: (m: MigrationInput) => Promise<void>;
}

export class SelfService {
  private readonly servers = new Map<string, Server>();
  private readonly runDir: string;

  constructor(private readonly deps: SelfServiceDeps) {
    this.runDir = deps.runDir;
  }

  /** Opens the container's socket (idempotent); must exist before the container starts or restores. */
  async listen(container: string): Promise<string> {
    const dir = selfDir(this.runDir, container);
    if (this.servers.has(container)) return dir;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const sock = path.join(dir, 'ferry.sock');
    await rm(sock, { force: true });
    const server = createServer((c) => void this.serve(container, c));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(sock, () => resolve()));
    this.servers.set(container, server);
    return dir;
  }

  async close(container: string): Promise<void> {
    this.servers.get(container)?.close();
    this.servers.delete(container);
    await rm(selfDir(this.runDir, container), { recursive: true, force: true });
  }

  closeAll(): void {
    for (const s of this.servers.values()) s.close();
  }

  /** The host pid of the process on the other end of `conn`, by the kernel's socket table. */
  private async peerPid(container: string, conn: Socket): Promise<number> {
    const fd = (conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const link = fd !== undefined ? await readlink(`/proc/self/fd/${fd}`).catch(() => '') : '';
    const inode = /socket:\[(\d+)\]/.exec(link)?.[1];
    const containerPid = await this.deps.containerPid(container);
    if (!inode || !containerPid)
      throw new FerryError('AuthRefused', 'cannot see the caller of the self-service socket');
    const ss = await exec('nsenter', [`--net=/proc/${containerPid}/ns/net`, 'ss', '-xpn'], {
      errorCode: 'Internal',
    });
    const pid = peerPidFromSs(ss.stdout, inode);
    if (!pid)
      throw new FerryError('AuthRefused', 'the kernel does not know the caller of the self-service socket');
    return pid;
  }

  private async serve(container: string, conn: Socket): Promise<void> {
    const log = this.deps.log.child({ selfService: container });
    const reply = (v: unknown) => conn.end(JSON.stringify(v) + '\n');
    try {
      const pid = await this.peerPid(container, conn);
      const cgroup = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
      const expected = `${this.deps.cgroupParent}/${container}`;
      if (!cgroup.split('\n').some((l) => l.endsWith(`:${expected}`))) {
        throw new FerryError('AuthRefused', `caller pid ${pid} is not in container ${container}`);
      }
      let line = '';
      for await (const chunk of readChunks(conn)) {
        line += chunk.toString('utf8');
        if (line.includes('\n') || line.length > 4096) break;
      }
      const req = SelfRequestSchema.safeParse(JSON.parse(line.split('\n')[0] || '{}'));
      if (!req.success)
        throw new FerryError(
          'InvalidInput',
          req.error.issues.map((i) => `${i.path.join('.') || 'request'}: ${i.message}`).join('; '),
        );
      const name = `self-${container}-${randomBytes(3).toString('hex')}`.slice(0, 63);
      await this.deps.requestMigration({
        apiVersion: API_VERSION,
        kind: 'Migration',
        metadata: {
          name,
          namespace: 'default',
          annotations: { 'ferry.dev/requested-by': `pid ${pid} in ${container}` },
        },
        spec: { source: { node: this.deps.node, container }, target: { node: req.data.target } },
      });
      log.info({ pid, migration: name, target: req.data.target }, 'self-migration requested');
      reply({ ok: true, migration: name });
    } catch (err) {
      log.warn({ reason: errorMessage(err) }, 'self-service request refused');
      reply({ ok: false, error: errorMessage(err) });
    }
  }
}
