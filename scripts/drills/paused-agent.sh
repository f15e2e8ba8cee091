#!/bin/bash
# A drill by hand, on the local cluster (`ferry cluster up`), of docs/fencing.md's cases: a 512 MiB
# workload moves node1 -> node2 by StopAndCopy; when the live mark names PHASE, NODE's agent is
# paused (SIGSTOP) for 40 s, or with "flush" the cluster's Redis is wiped. Then it shows what ran
# where: the Migration, ferry ps, and the workload's own check on both nodes.
# usage: scripts/drills/paused-agent.sh NAME NODE PHASE [flush]
set -u
F="$(cd "$(dirname "$0")/../.." && pwd)/bin/ferry"
H=/var/lib/ferry/local/nodes
R="redis-cli -s /var/lib/ferry/local/redis.sock"
name=$1 node=$2 hit=$3 how=${4:-pause}
$F run "$name" --node node1 --memory-mib 512 >/dev/null
sleep 2
$F migrate "$name" --name "m-$name" --from node1 --to node2 --strategy StopAndCopy >/dev/null
# The live mark names the phase the controller entered: poll it (a few ms a read).
for i in $(seq 1 20000); do
  k=$($R --raw keys 'ferry-local:live:*' | head -1)
  [ -n "$k" ] && $R --raw get "$k" | grep -q "\"phase\":\"$hit\"" && break
  sleep 0.005
done
echo "$(date +%T.%N | cut -c1-12) reached $hit"
if [ "$how" = flush ]; then
  $R flushall >/dev/null; echo "FLUSHALL"
  sleep 30
else
  pid=$(cat $H/$node/agent.pid)
  kill -STOP "$pid"; echo "$(date +%T) paused $node's agent ($pid) for 40 s"; sleep 40; kill -CONT "$pid"; echo "$(date +%T) resumed"
  for i in $(seq 1 300); do $F get migration "m-$name" 2>/dev/null | grep -qE "Succeeded|Failed" && break; sleep 1; done
  $F describe migration "m-$name" | grep -E "^Phase|Reason|Downtime|silent|Warning" | cut -c1-240
fi
sleep 8
echo "--- ferry ps:"; $F ps | grep -E "NODE|$name"
for n in node1 node2; do echo "$n verify: $($F verify "$name" --node $n 2>&1 | tail -1)"; done
