// What a bare process tree's TCP sockets would do on another node. Its sockets move with it, but
// their addresses do not: a connection or listener on the source node's own address cannot be
// bound back on the target ("soccr: Can't bind inet socket back: Cannot assign requested
// address"), and a connection to a loopback peer outside the tree is left with no other end.
// Both are found in preflight, before anything is frozen, and refused with the socket named.
import { readFile, readdir, readlink } from 'node:fs/promises';

export interface TcpSocket {
  inode: string;
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  /** ESTABLISHED, LISTEN, or another TCP state. */
  state: string;
}

const STATES: Record<string, string> = { '01': 'ESTABLISHED', '0A': 'LISTEN' };

/** An address of /proc/net/tcp or tcp6 (hex, in host byte order by 32-bit word). Pure. */
function hexAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join('.');
  // IPv6: an IPv4-mapped one is written as IPv4; the rest as eight groups.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff)
    return bytes.slice(12).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** The sockets of /proc/PID/net/tcp or tcp6. Pure. */
export function parseProcNetTcp(text: string): TcpSocket[] {
  return text
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9)
    .map((f) => {
      const [la = '', lp = '0'] = f[1]!.split(':');
      const [ra = '', rp = '0'] = f[2]!.split(':');
      return {
        inode: f[9]!,
        local: hexAddress(la),
        localPort: parseInt(lp, 16),
        remote: hexAddress(ra),
        remotePort: parseInt(rp, 16),
        state: STATES[f[3]!] ?? f[3]!,
      };
    });
}

const loopback = (a: string) => a.startsWith('127.') || a === '::1';
const wildcard = (a: string) => a === '0.0.0.0' || a === '::';

/**
 * Why these sockets of the tree cannot move, one line each. `mine` are the tree's socket inodes;
 * `all` every TCP socket of the namespace (to find a loopback connection's other end). Pure.
 */
export function socketProblems(mine: ReadonlySet<string>, all: TcpSocket[], node: string): string[] {
  const problems: string[] = [];
  for (const s of all.filter((x) => mine.has(x.inode))) {
    if (s.state !== 'ESTABLISHED' && s.state !== 'LISTEN') continue;
    const at = `${s.local}:${s.localPort}`;
    if (!loopback(s.local) && !wildcard(s.local)) {
      const what =
        s.state === 'LISTEN'
          ? `listens on ${at}`
          : `has a TCP connection on ${at} (to ${s.remote}:${s.remotePort})`;
      problems.push(`it ${what}, an address of ${node} that the target does not have`);
      continue;
    }
    if (s.state !== 'ESTABLISHED' || !loopback(s.local)) continue;
    const peer = all.find(
      (p) =>
        p.local === s.remote &&
        p.localPort === s.remotePort &&
        p.remote === s.local &&
        p.remotePort === s.localPort,
    );
    if (peer && !mine.has(peer.inode))
      problems.push(
        `it has a TCP connection from ${at} to ${s.remote}:${s.remotePort}, whose other end is not in the tree: it would be left without a peer on the target`,
      );
  }
  return problems;
}

/** The socket inodes the processes hold open. */
export async function socketInodes(pids: number[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const pid of pids)
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
      const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
      if (m) out.add(m[1]!);
    }
  return out;
}

/** Every TCP socket of the network namespace `pid` is in. */
export async function namespaceTcp(pid: number): Promise<TcpSocket[]> {
  const texts = await Promise.all(
    ['tcp', 'tcp6'].map((f) => readFile(`/proc/${pid}/net/${f}`, 'utf8').catch(() => '')),
  );
  return texts.flatMap(parseProcNetTcp);
}
