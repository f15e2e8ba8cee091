// FAKE of ferry's CUDA helper (workload/cuda-ckpt.c), for tests on machines without a GPU: the same
// operations, JSON lines, exit statuses and state machine (running -> locked -> checkpointed ->
// locked -> running). Run with node: [node, this file, --state FILE, OP, PID]. Its CUDA processes
// are those whose environment holds FERRY_FAKE_CUDA_ID=ID; their states are kept in FILE by that
// ID, so a process's CUDA state goes wherever CRIU takes the process, as a real one's does in its
// memory. FILE also says what to fake: {"fail": {"restore": 1}} makes the next restore fail as the
// driver would (exit 5); {"probe": {"node2": {...}}} is what probe answers on node2 (the node is the
// network namespace it runs in); {"driver": "none"} acts as a node without a driver (exit 3).
// Every call is appended to FILE.log as "OP PID ID".
import { appendFileSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import process from 'node:process';

const say = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

const args = process.argv.slice(2);
const file = args[0] === '--state' ? args[1] : '/tmp/ferry-fake-cuda.json';
const [op, pidArg] = args[0] === '--state' ? args.slice(2) : args;
const die = (code, text) => {
  process.stderr.write(`ferry-cuda: ${text}\n`);
  process.exit(code);
};
if (!op || (op !== 'probe' && !pidArg))
  die(2, 'usage: probe | state PID | lock PID | checkpoint PID | restore PID | unlock PID');
if (op !== 'probe' && !/^[1-9]\d*$/.test(pidArg)) die(2, `not a process ID: ${pidArg}`);
const read = () => {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return {};
  }
};
const state = read();
const save = () => writeFileSync(file, JSON.stringify(state));
/** The fake CUDA identity of a process, from its environment; undefined: no CUDA state. */
const idOf = (pid) => {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return env.find((e) => e.startsWith('FERRY_FAKE_CUDA_ID='))?.slice('FERRY_FAKE_CUDA_ID='.length);
  } catch {
    return undefined;
  }
};
/** The local cluster node whose network namespace this runs in (ferry-CLUSTER-NODE), if any. */
const node = () => {
  const mine = statSync('/proc/self/ns/net').ino;
  for (const name of readdirSync('/run/netns').sort())
    if (statSync(`/run/netns/${name}`).ino === mine) return name.split('-').at(-1);
  return undefined;
};
const id = op === 'probe' ? undefined : idOf(Number(pidArg));
appendFileSync(`${file}.log`, `${[op, pidArg, id].filter(Boolean).join(' ')}\n`);
if (state.driver === 'none')
  die(3, 'no CUDA driver on this node: libcuda.so.1: cannot open shared object file');
if (op === 'probe') {
  const gpu = {
    index: 0,
    name: 'FAKE GPU',
    uuid: 'GPU-fake-0',
    totalBytes: 80 * 2 ** 30,
    freeBytes: 70 * 2 ** 30,
  };
  const answer = state.probe?.[node() ?? ''] ?? { driverVersion: 13000, checkpointApi: true, devices: [gpu] };
  say(answer);
  process.exit(0);
}
const pid = Number(pidArg);
state.cuda ??= {};
const now = id === undefined ? undefined : (state.cuda[id] ?? 'running');
if (op === 'state') {
  say({ pid, state: now ?? 'none' });
  process.exit(0);
}
const moves = {
  lock: ['running', 'locked'],
  checkpoint: ['locked', 'checkpointed'],
  restore: ['checkpointed', 'locked'],
  unlock: ['locked', 'running'],
};
if (!moves[op]) die(2, `unknown operation ${op}`);
if (state.fail?.[op] > 0) {
  state.fail[op]--;
  save();
  die(
    5,
    `cuCheckpointProcess${op[0].toUpperCase()}${op.slice(1)}: CUDA_ERROR_ILLEGAL_STATE (401): injected failure`,
  );
}
if (now === undefined)
  die(5, `cuCheckpointProcessGetState: CUDA_ERROR_NOT_FOUND (500): process ${pid} holds no CUDA state`);
const [from, to] = moves[op];
if (now !== from) die(5, `${op}: CUDA_ERROR_ILLEGAL_STATE (401): process ${pid} is ${now}, not ${from}`);
state.cuda[id] = to;
save();
say({ pid, state: to });
