import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProcNetTcp, socketProblems } from './process-sockets.ts';

// Two ends of a loopback connection (127.0.0.1:7001 <-> 127.0.0.1:40000), a listener on the node's
// address 10.77.0.11:6379, and a wildcard listener, as /proc/net/tcp shows them.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1B59 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 20 4 30 10 -1
   1: 0100007F:9C40 0100007F:1B59 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 20 4 30 10 -1
   2: 0B004D0A:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 100 0 0 10 0
   3: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1004 1 0 100 0 0 10 0
`;

test('/proc/net/tcp is read as addresses, ports and states', () => {
  const s = parseProcNetTcp(TCP);
  assert.deepEqual(s[0], {
    inode: '1001',
    local: '127.0.0.1',
    localPort: 7001,
    remote: '127.0.0.1',
    remotePort: 40000,
    state: 'ESTABLISHED',
  });
  assert.equal(s[2]!.local, '10.77.0.11');
  assert.equal(s[2]!.state, 'LISTEN');
  assert.equal(s[3]!.local, '0.0.0.0');
});

test('a loopback peer outside the tree and the node’s own address are refused; the rest moves', () => {
  const all = parseProcNetTcp(TCP);
  // The tree holds one end of the loopback connection: its peer stays behind.
  assert.match(
    socketProblems(new Set(['1002']), all, 'node1')[0]!,
    /from 127.0.0.1:40000 to 127.0.0.1:7001, whose other end is not in the tree/,
  );
  // Both ends in the tree move together; a wildcard listener binds anywhere.
  assert.deepEqual(socketProblems(new Set(['1001', '1002', '1004']), all, 'node1'), []);
  assert.match(
    socketProblems(new Set(['1003']), all, 'node1')[0]!,
    /listens on 10.77.0.11:6379, an address of node1 that the target does not have/,
  );
});
