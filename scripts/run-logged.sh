#!/usr/bin/env bash
# Runs COMMAND (`runc run|restore --detach …`) with its stdout and stderr on a pipe whose reader
# appends to LOG and outlives COMMAND: the container's output, kept on its node (`ferry logs`).
# runc hands its stdio to the container; at a restore it maps the pipe the container had to its
# own stdio (CRIU's inherit-fd), so the restored container writes on into the log on its new node.
# Installed as /opt/ferry/bin/ferry-run-logged by scripts/setup.sh.
#   ferry-run-logged LOG COMMAND [ARG...]
set -euo pipefail
log=$1
shift
exec "$@" < /dev/null > >(exec cat >> "$log") 2>&1
