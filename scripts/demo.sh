#!/usr/bin/env bash
# The README's main command: installs what is missing (scripts/setup.sh), then brings up a 2-node
# local cluster and migrates a workload holding 256 MiB of state from node1 to node2.
# Extra arguments go to `ferry demo` (e.g. --memory-mib 1024).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec ./bin/ferry demo "$@"
