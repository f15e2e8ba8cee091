#!/usr/bin/env bash
# The GPU check (issue 19), for a machine with an NVIDIA GPU, its driver and CUDA: ferry's own code
# on a two-node local cluster moves a runc container whose CUDA program (workload/cuda-workload.cu,
# built here with nvcc) holds a known pattern in GPU memory, from node1 to node2 on the same GPU;
# the program then checks every word of it on the GPU, its device counter and its log. What that
# machine lacks (node, runc, Redis, ip, btrfs-progs, zstd, iptables, CRIU) comes in .gpu-carry/,
# packed by test/gpu/pack.sh where those are installed.
# Then a move made to fail at the restore rolls back, and the program checks itself on node1.
#   --bench [--sizes MiB,...]  then GPU checkpoint + restore time against GPU memory size
#                              (bench/gpu.ts; default 1024,4096,16384)
#   --fake                     a rehearsal on a machine without a GPU: the fake CUDA helper
#                              (test/fake-cuda-helper.mjs), fake NVIDIA nodes (/dev/null's numbers)
#                              and the CPU test workload holding one open; everything else as on
#                              the GPU machine (test/gpu-check.test.ts runs it in CI)
#   --gpu-mib N                GPU memory the moved program holds (default 256)
#   --carry DIR                where pack.sh left its files (default .gpu-carry)
#   --out DIR                  copy the migration, results and logs there
# Run as root from the repository; it takes its own cluster ("gpu", 10.80.0.0/24) down at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
CARRY=.gpu-carry FAKE=0 BENCH=0 SIZES=1024,4096,16384 MIB=256 OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --fake) FAKE=1 ;;
    --bench) BENCH=1 ;;
    --sizes) SIZES=$2; shift ;;
    --gpu-mib) MIB=$2; shift ;;
    --carry) CARRY=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "check: run as root" >&2; exit 1; }
CARRY=$(cd "$CARRY" && pwd)
START=$(date +%s)
say() { echo "check [$(($(date +%s) - START))s]: $*"; }
W=/var/lib/ferry-gpu-check
CLUSTER=gpu
rm -rf "$W" && mkdir -p "$W/bin" "$W/ferry" && chmod 700 "$W"

# 1. What the machine lacks, unpacked: node and the tools in $W, /opt/ferry where ferry expects it.
say "unpacking $(du -sh "$CARRY" | cut -f1) from $CARRY"
xz -dc "$CARRY/node.xz" > "$W/bin/node" && chmod 755 "$W/bin/node"
tar -C "$W/ferry" -xJf "$CARRY/ferry.tar.xz"
tar -C "$W" -xJf "$CARRY/tools.tar.xz"
tar -C / -xJf "$CARRY/opt.tar.xz"
export PATH=$W/tools/bin:$W/bin:$W/ferry/bin:$PATH
ferry() { "$W/ferry/bin/ferry" --cluster "$CLUSTER" "$@"; }
# CRIU locks a container's network with iptables' mark match; where this kernel cannot, the lock is
# skipped (the moved container has loopback only) and the check says so.
LOCK='*filter\n:FERRYTEST - [0:0]\n-I INPUT -j FERRYTEST\n-A FERRYTEST -m mark --mark 0xC114 -j ACCEPT\nCOMMIT\n'
if ! unshare -n sh -c "printf '$LOCK' | iptables-restore -w --noflush" 2>/dev/null; then
  echo "network-lock skip" >> /opt/ferry/etc/criu.conf
  echo "check: this kernel refuses iptables' mark match: CRIU's network lock is skipped" >&2
fi
say "node $(node --version), $(runc --version | head -n1), CRIU $(/opt/ferry/bin/criu --version | awk 'NR==1{print $2}'), $(redis-server --version | awk '{print $3}'), $(btrfs --version | head -n1)"

# 2. ferry's CUDA helper, built against this machine's cuda.h; the CUDA program, for its GPU.
UP=()
if [ "$FAKE" = 1 ]; then
  mkdir -p "$W/dev"
  for n in nvidia0 nvidiactl nvidia-uvm; do mknod -m 0600 "$W/dev/$n" c 1 3; done
  echo '{}' > "$W/fake-cuda.json"
  printf '#!/bin/sh\nexec node %s/test/fake-cuda-helper.mjs --state %s "$@"\n' "$REPO" "$W/fake-cuda.json" > "$W/bin/ferry-cuda"
  chmod 755 "$W/bin/ferry-cuda"
  HELPER=$W/bin/ferry-cuda DEV=$W/dev
  UP=(--cuda-helper "$HELPER" --gpu-dev-dir "$DEV")
else
  say "$(bash scripts/build-cuda-helper.sh /opt/ferry/bin/ferry-cuda --need-cuda-h)"
  HELPER=/opt/ferry/bin/ferry-cuda DEV=/dev
  NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc)
  "$NVCC" -O2 -arch=native -o "$W/cuda-workload" workload/cuda-workload.cu
fi
say "helper probe: $("$HELPER" probe)"

# 3. The container's bundle: the program, the libraries it loads (the driver's libcuda.so.1
# among them) in a merged-/usr root of its own, and a spec naming the NVIDIA nodes.
B=$W/bundle R=$W/bundle/rootfs
mkdir -p "$R/usr/bin" "$R/usr/lib/x86_64-linux-gnu" "$R/usr/lib64" "$R"/{data,proc,dev,sys,tmp,etc}
for l in bin lib lib64; do ln -s "usr/$l" "$R/$l"; done
copy_libs() { ldd "$1" | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
  case "$lib" in
    */ld-linux-x86-64.so.2) cp -L "$lib" "$R/usr/lib64/" ;;
    *) cp -L "$lib" "$R/usr/lib/x86_64-linux-gnu/" ;;
  esac
done; }
if [ "$FAKE" = 1 ]; then
  # The CPU test workload, linked dynamically as the CUDA one is, so its root is made the same way.
  gcc -O2 -Wall -pthread -o "$W/workload" workload/workload.c
  cp "$W/workload" "$R/usr/bin/workload"
  copy_libs "$W/workload"
  ARGS='["/usr/bin/workload","--mem-mib","'"$MIB"'","--interval-ms","20","--dir","/data","--open","/dev/nvidia0"]'
  ENV='"FERRY_FAKE_CUDA_ID=gpu-check"'
else
  cp "$W/cuda-workload" "$R/usr/bin/cuda-workload"
  copy_libs "$W/cuda-workload"
  LIBCUDA=$( (ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}'; ls /usr/local/nvidia/lib64/libcuda.so.1 /usr/lib/x86_64-linux-gnu/libcuda.so.1 2>/dev/null) | head -n1)
  [ -n "$LIBCUDA" ] || { echo "check: the driver's libcuda.so.1 is not found" >&2; exit 1; }
  cp -L "$LIBCUDA" "$R/usr/lib/x86_64-linux-gnu/libcuda.so.1"
  copy_libs "$LIBCUDA"
  ARGS='["/usr/bin/cuda-workload","--gpu-mib","'"$MIB"'","--interval-ms","100","--dir","/data"]'
  ENV=
fi
DEVICES=() RULES=()
for d in "$DEV"/nvidia*; do
  [ -c "$d" ] || continue
  n=$(basename "$d") major=$((16#$(stat -c %t "$d"))) minor=$((16#$(stat -c %T "$d")))
  DEVICES+=('{"path":"/dev/'"$n"'","type":"c","major":'"$major"',"minor":'"$minor"',"fileMode":438,"uid":0,"gid":0}')
  RULES+=('{"allow":true,"type":"c","major":'"$major"',"minor":'"$minor"',"access":"rwm"}')
done
[ ${#DEVICES[@]} -gt 0 ] || { echo "check: no NVIDIA device nodes in $DEV" >&2; exit 1; }
join() { local IFS=,; echo "$*"; }
cat > "$B/config.json" <<EOF
{"ociVersion":"1.0.2","root":{"path":"rootfs"},
 "process":{"args":$ARGS,"env":["PATH=/usr/bin","LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu"${ENV:+,$ENV}],"cwd":"/","user":{"uid":0,"gid":0}},
 "linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"network"}],
  "devices":[$(join "${DEVICES[@]}")],
  "resources":{"devices":[{"allow":false,"access":"rwm"},$(join "${RULES[@]}")]}}}
EOF
say "bundle: $(du -sh "$R" | cut -f1), devices $(cd "$DEV" && echo nvidia*)"

# 4. The cluster (fault hooks on, for step 5), the program on node1, its move to node2, its own
# check there.
cleanup() {
  if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    for n in node1 node2; do cp "/var/lib/ferry/$CLUSTER/nodes/$n/agent.log" "$OUT/agent-$n.log" 2>/dev/null || true; done
    cp "/var/lib/ferry/$CLUSTER/controller.log" "$OUT/controller.log" 2>/dev/null || true
  fi
  ferry cluster down >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
ferry cluster down >/dev/null 2>&1 || true
IMAGES=$((BENCH == 1 ? 2 * ${SIZES##*,} / 1024 + 4 : 8))
ferry cluster up --nodes 2 --subnet 10.80.0 --metrics-port 0 --disk-gib 16 --images-gib "$IMAGES" --fault-hooks "${UP[@]}" | sed 's/^/  /'
ferry run gpu-check --node node1 --bundle "$B" | sed 's/^/  /'
ready=/var/lib/ferry/$CLUSTER/nodes/node1/fs/containers/gpu-check/rootfs/data/ready
for _ in $(seq 600); do [ -e "$ready" ] && break; sleep 0.2; done
[ -e "$ready" ] || { echo "check: the program never said it was ready"; ferry logs gpu-check --node node1; exit 1; }
before=$(ferry verify gpu-check --node node1) || { echo "check: FAIL before the move: $before" >&2; exit 1; }
say "before the move: $before"
# StopAndCopy: GPU memory leaves the device only at the driver's checkpoint, inside the freeze.
ferry migrate gpu-check --from node1 --to node2 --name gpu-check --strategy StopAndCopy --wait | sed 's/^/  /' ||
  { echo "check: FAIL: the move did not succeed" >&2; exit 1; }
ferry get migration gpu-check -o json > "$W/migration.json"
if [ -n "$OUT" ]; then mkdir -p "$OUT" && cp "$W/migration.json" "$OUT/"; fi
after=$(ferry verify gpu-check --node node2) || { echo "check: FAIL: the moved program found its state changed: $after" >&2; exit 1; }
say "after the move, on node2: $after"
ferry rm gpu-check --node node2 >/dev/null
say "PASS: moved from node1 to node2 with its GPU memory intact"

# 5. A move that fails on the target after the GPU checkpoint rolls back: the driver gives the
# source its GPU memory back, and the program's own check passes there.
node "$W/ferry/dist/gpu-rollback.mjs" --cluster "$CLUSTER" --bundle "$B" | sed 's/^/  /' ||
  { echo "check: FAIL: the rolled-back move did not leave the program intact on node1" >&2; exit 1; }
say "PASS: a move failed at the restore rolled back, the program intact on node1"

if [ "$BENCH" = 1 ]; then
  node "$W/ferry/dist/gpu-bench.mjs" --cluster "$CLUSTER" --bundle "$B" --sizes "$SIZES"
  if [ -n "$OUT" ]; then cp "$W/ferry/bench/results/gpu.json" "$OUT/"; fi
fi
say "done"
