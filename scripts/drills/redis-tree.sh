#!/bin/bash
# A drill by hand, on the local cluster (`ferry cluster up`): a real Redis (Debian's redis-server)
# started as a daemon in node1's namespace (parent PID 1), filled with 2 M keys, moved as a bare
# process tree to node2 and compared by DEBUG DIGEST; then moving it back with a client connected
# from outside the tree is refused in preflight.
set -u
F="$(cd "$(dirname "$0")/../.." && pwd)/bin/ferry"
N1=/run/netns/ferry-local-node1; N2=/run/netns/ferry-local-node2
D=$(mktemp -d /tmp/redis-tree.XXXX)
nsenter --net=$N1 setsid -f redis-server --port 6390 --bind 0.0.0.0 --save '' --appendonly no --dir $D --daemonize no --enable-debug-command yes >/dev/null 2>&1 < /dev/null
sleep 1
PID=$(pgrep -f "redis-server 0.0.0.0:6390" | head -1)
echo "redis pid $PID, parent $(ps -o ppid= -p $PID)"
nsenter --net=$N1 redis-cli -p 6390 DEBUG POPULATE 2000000 key 100 >/dev/null
echo "used memory: $(nsenter --net=$N1 redis-cli -p 6390 INFO memory | grep used_memory_human)"
BEFORE=$(nsenter --net=$N1 redis-cli -p 6390 DEBUG DIGEST)
echo "digest before: $BEFORE"
T0=$(date +%s.%N)
$F migrate redis --pid $PID --name m-redis-tree --from node1 --to node2 --strategy StopAndCopy --wait 2>&1 | tail -4
echo "elapsed $(awk "BEGIN{print $(date +%s.%N) - $T0}") s"
AFTER=$(nsenter --net=$N2 redis-cli -p 6390 DEBUG DIGEST)
echo "digest after on node2: $AFTER"
[ "$BEFORE" = "$AFTER" ] && echo "SAME DIGEST" || echo "DIGEST DIFFERS"
$F describe migration m-redis-tree | grep -iE "downtime|phase|mode" | head -5
# A client of it held open from outside the tree, over node2's loopback: refused in preflight.
nsenter --net=$N2 bash -c "exec 3<>/dev/tcp/127.0.0.1/6390; sleep 60" &
CL=$!
sleep 1
$F migrate redis --pid $PID --name m-redis-back --from node2 --to node1 --strategy StopAndCopy --wait 2>&1 | tail -3
kill $CL 2>/dev/null
nsenter --net=$N2 redis-cli -p 6390 DEBUG DIGEST
kill $PID; rm -rf $D
