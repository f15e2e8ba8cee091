// The transfer protocol over a real ssh2 connection on loopback: what arrives is what was sent,
// and hostile or broken streams are rejected with their reason and leave nothing behind.
import { existsSync } from 'node:fs';
import { TunnelPermits, forwardLocal } from './tunnels.ts';
import type { PageServer } from './receiver.ts';
import { createServer, connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { createLogger } from '../../lib/logger.ts';
import { FrameType, PROTOCOL, encodeFrame, jsonFrame } from './frames.ts';
import { generateNodeKey } from '../../lib/ssh-keys.ts';
import { TransferSession } from './sender.ts';
import { startSshServer } from './ssh-server.ts';

const src = generateNodeKey('src');
const dst = generateNodeKey('dst');
let dir: string;
let server: { port: number; close(): void };
let peer: { node: string; address: string; sshPort: number; publicKey: string };
const permits = new TunnelPermits();
const imagesDir = (uid: string) => path.join(dir, 'images', uid);

/**
 * Stands in for `criu page-server` (the real one runs in test/strategies.test.ts): writes what
 * arrives on its port into pages.img of the asked folder, and is done when the sender hangs up.
 */
async function fakePageServer(uid: string, peerNode: string, into: { dir: string }): Promise<PageServer> {
  let finished: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const srv = createServer((sock) => {
    const got: Buffer[] = [];
    sock.on('data', (d: Buffer) => got.push(d));
    sock.on('end', () => {
      const folder = path.join(imagesDir(uid), into.dir);
      void mkdir(folder, { recursive: true })
        .then(() => writeFile(path.join(folder, 'pages.img'), Buffer.concat(got)))
        .then(() => srv.close(() => finished()));
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const port = (srv.address() as AddressInfo).port;
  permits.allow(port, peerNode);
  return { port, done, stop: async () => void srv.close() };
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ferry-transfer-'));
  const peersFile = path.join(dir, 'peers.json');
  await writeFile(
    peersFile,
    JSON.stringify([{ node: 'src', address: '127.0.0.1', sshPort: 1, publicKey: src.publicKey }]),
  );
  server = await startSshServer({
    address: '127.0.0.1',
    port: 0,
    hostKey: dst.privateKey,
    peersFile,
    receiver: {
      imagesDir,
      incomingDir: (uid) => path.join(dir, 'incoming', uid),
      startPageServer: fakePageServer,
      // What the controller's expected-transfer keys say: here, every migration but "ended-*" ones.
      expects: async (uid, peerNode) => peerNode === 'src' && !uid.startsWith('ended-'),
    },
    permits,
    log: createLogger('test', '/dev/null'),
  });
  peer = { node: 'dst', address: '127.0.0.1', sshPort: server.port, publicKey: dst.publicKey };
});
after(() => server.close());

/** An authenticated raw channel, for writing frames a well-behaved sender never would. */
async function rawChannel(): Promise<{
  channel: ssh2.ClientChannel;
  replies: () => Promise<string>;
  conn: ssh2.Client;
}> {
  const conn = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    conn.once('ready', () => resolve()).once('error', reject);
    conn.connect({ host: '127.0.0.1', port: server.port, username: 'src', privateKey: src.privateKey });
  });
  const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
    conn.subsys(PROTOCOL, (err, ch) => (err ? reject(err) : resolve(ch))),
  );
  let text = '';
  channel.on('data', (d: Buffer) => (text += d.toString()));
  const replies = () => new Promise<string>((resolve) => channel.once('close', () => resolve(text)));
  return { channel, replies, conn };
}

const begin = (migration: string, sourceNode = 'src') =>
  jsonFrame(FrameType.Header, { type: 'begin', protocol: PROTOCOL, migration, sourceNode });

test('a file arrives byte for byte, readable by its owner only', async () => {
  const data = Buffer.alloc(3 * 1024 * 1024 + 17, 1).map((_, i) => i % 251);
  const file = path.join(dir, 'pages.img');
  await writeFile(file, data, { mode: 0o644 });
  const s = await TransferSession.open({
    self: 'src',
    privateKey: src.privateKey,
    peer,
    migration: 'mig-00000001',
  });
  await s.sendFile(file, 'checkpoint/pages.img');
  await s.finish();
  s.close();
  const got = path.join(imagesDir('mig-00000001'), 'checkpoint/pages.img');
  assert.equal(
    createHash('sha256')
      .update(await readFile(got))
      .digest('hex'),
    createHash('sha256').update(data).digest('hex'),
  );
  assert.equal((await stat(got)).mode & 0o077, 0, 'not readable by group or others');
});

test('a corrupted item is rejected with IntegrityError and nothing of it is kept', async () => {
  const { channel, replies, conn } = await rawChannel();
  channel.write(begin('mig-00000002'));
  channel.write(
    jsonFrame(FrameType.Header, { type: 'file', path: 'checkpoint/core.img', size: 4, mode: 0o600 }),
  );
  channel.write(encodeFrame(FrameType.Data, Buffer.from('abcd')));
  channel.write(
    jsonFrame(FrameType.End, { sha256: createHash('sha256').update('abce').digest('hex'), bytes: 4 }),
  );
  const text = await replies();
  conn.end();
  assert.match(text, /"code":"IntegrityError".*sha256 mismatch/);
  assert.deepEqual(await readdir(path.join(imagesDir('mig-00000002'), 'checkpoint')), []);
});

test('a path that climbs out of the image folder is refused', async () => {
  const { channel, replies, conn } = await rawChannel();
  channel.write(begin('mig-00000003'));
  channel.write(jsonFrame(FrameType.Header, { type: 'file', path: '../../escape', size: 1, mode: 0o600 }));
  const text = await replies();
  conn.end();
  assert.match(text, /"code":"StreamRejected".*path must stay inside the migration folder/);
  assert.ok(!(await readdir(dir)).includes('escape'));
});

test('a truncated stream is rejected and its partial file removed', async () => {
  const { channel, replies, conn } = await rawChannel();
  channel.write(begin('mig-00000004'));
  channel.write(jsonFrame(FrameType.Header, { type: 'file', path: 'pages.img', size: 100, mode: 0o600 }));
  channel.write(encodeFrame(FrameType.Data, Buffer.alloc(50)));
  channel.end();
  const text = await replies();
  conn.end();
  assert.match(text, /"code":"StreamRejected".*truncated/);
  assert.deepEqual(await readdir(imagesDir('mig-00000004')), []);
});

test('a stream that claims another node than its key is refused', async () => {
  const { channel, replies, conn } = await rawChannel();
  channel.write(begin('mig-00000005', 'node7'));
  const text = await replies();
  conn.end();
  assert.match(text, /claims source node7 but the SSH key is src's/);
});

test('a stream for a migration the target does not expect (a replay) is refused, and nothing is written', async () => {
  const { channel, replies, conn } = await rawChannel();
  channel.write(begin('ended-0000000a'));
  const text = await replies();
  conn.end();
  assert.match(
    text,
    /no migration ended-0000000a from src is expected here now: it ended or moved past its transfer/,
  );
  assert.equal(existsSync(imagesDir('ended-0000000a')), false);
});

test('an oversized header is refused before it is buffered', async () => {
  const { channel, replies, conn } = await rawChannel();
  channel.write(begin('mig-00000006'));
  const head = Buffer.alloc(5);
  head.writeUInt8(FrameType.Header, 0);
  head.writeUInt32BE(10 * 1024 * 1024, 1);
  channel.write(head);
  const text = await replies();
  conn.end();
  assert.match(text, /"code":"StreamRejected".*exceeds the 65536-byte limit/);
});

test('a streamed dump goes through a tunnel to the page server the target started for it', async () => {
  const s = await TransferSession.open({
    self: 'src',
    privateKey: src.privateKey,
    peer,
    migration: 'mig-00000010',
  });
  const pages = Buffer.alloc(2 * 1024 * 1024, 7);
  await s.streamDump(async (port) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.end(pages);
    await once(sock, 'close');
  });
  await s.finish();
  s.close();
  assert.ok(s.bytes >= pages.length, 'tunnelled bytes count as sent');
  assert.ok((await readFile(path.join(imagesDir('mig-00000010'), 'checkpoint', 'pages.img'))).equals(pages));
});

test('a tunnel to a port the peer did not offer is refused', async () => {
  const { conn } = await rawChannel();
  const secret = createServer((sock) => sock.end('secret'));
  await new Promise<void>((resolve) => secret.listen(0, '127.0.0.1', () => resolve()));
  const fwd = await forwardLocal(conn, (secret.address() as AddressInfo).port);
  const sock = connect({ host: '127.0.0.1', port: fwd.port });
  let got = '';
  sock.on('data', (d: Buffer) => (got += d.toString()));
  sock.on('error', () => undefined);
  await once(sock, 'close');
  fwd.close();
  secret.close();
  conn.end();
  assert.equal(got, '', 'nothing of the unoffered port came back');
});

test('a link probe measures a rate and leaves nothing behind', async () => {
  const s = await TransferSession.open({
    self: 'src',
    privateKey: src.privateKey,
    peer,
    migration: 'mig-00000011',
  });
  const rate = await s.probe(4 * 1024 * 1024);
  await s.finish();
  s.close();
  assert.ok(rate > 0);
  // Not even an empty folder: a preflight that fails after its probe must leave the target as it was.
  assert.equal(existsSync(imagesDir('mig-00000011')), false);
});

test('a file that cannot be written whole on the target (a full filesystem) is refused, nothing kept', async () => {
  // /dev/full fails every write with ENOSPC: the folder's file is a link to it.
  const uid = 'mig-0000full';
  await mkdir(imagesDir(uid), { recursive: true });
  await symlink('/dev/full', path.join(imagesDir(uid), 'pages-1.img.part'));
  const file = path.join(dir, 'full-src.bin');
  await writeFile(file, randomBytes(256 * 1024));
  const s = await TransferSession.open({ self: 'src', privateKey: src.privateKey, peer, migration: uid });
  try {
    await assert.rejects(
      s.sendFile(file, 'pages-1.img'),
      /rejected by the target: pages-1\.img: (cannot write it on this node: ENOSPC|0 of 262144 bytes reached the disk)/,
    );
  } finally {
    s.close();
  }
  assert.equal(existsSync(path.join(imagesDir(uid), 'pages-1.img')), false);
});

test('a file whose link broke mid-way resumes where it stopped, and its checksum covers the whole', async () => {
  const data = Buffer.alloc(6 * 1024 * 1024).map((_, i) => (i * 7) % 253);
  const file = path.join(dir, 'resume.img');
  await writeFile(file, data);
  const open = () =>
    TransferSession.open({ self: 'src', privateKey: src.privateKey, peer, migration: 'mig-00000012' });
  const first = await open();
  first.cutAfter(2 * 1024 * 1024);
  await assert.rejects(first.sendFile(file, 'checkpoint/resume.img', { resume: true }));
  first.close();
  // The receiver notices the broken channel a moment later and keeps the partial file.
  await new Promise((r) => setTimeout(r, 200));
  const second = await open();
  await second.sendFile(file, 'checkpoint/resume.img', { resume: true });
  await second.finish();
  second.close();
  assert.ok(second.resumedBytes >= 1024 * 1024, `resumed ${second.resumedBytes} bytes`);
  assert.ok((await readFile(path.join(imagesDir('mig-00000012'), 'checkpoint/resume.img'))).equals(data));
});

test('a zstd item arrives whole, with fewer bytes on the wire, and its checksum is of the file', async () => {
  const data = Buffer.concat([Buffer.alloc(3 * 1024 * 1024, 'ferry '), Buffer.from('end')]);
  const file = path.join(dir, 'text.img');
  await writeFile(file, data);
  const s = await TransferSession.open({
    self: 'src',
    privateKey: src.privateKey,
    peer,
    migration: 'mig-00000013',
  });
  await s.sendFile(file, 'checkpoint/text.img', { compress: true });
  await s.finish();
  s.close();
  assert.ok(s.bytes < data.length / 10, `sent ${s.bytes} bytes for ${data.length}`);
  assert.ok((await readFile(path.join(imagesDir('mig-00000013'), 'checkpoint/text.img'))).equals(data));
});

test('a zstd item that does not decompress is rejected and nothing of it is kept', async () => {
  const { channel, replies, conn } = await rawChannel();
  channel.write(begin('mig-00000014'));
  channel.write(
    jsonFrame(FrameType.Header, {
      type: 'file',
      path: 'core.img',
      size: 4,
      mode: 0o600,
      compression: 'zstd',
    }),
  );
  channel.write(encodeFrame(FrameType.Data, Buffer.from('not zstd at all')));
  channel.write(
    jsonFrame(FrameType.End, { sha256: createHash('sha256').update('abcd').digest('hex'), bytes: 4 }),
  );
  const text = await replies();
  conn.end();
  assert.match(text, /"code":"IntegrityError".*zstd stream does not decompress/);
  assert.deepEqual(await readdir(imagesDir('mig-00000014')), []);
});
