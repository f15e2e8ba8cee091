#!/usr/bin/env bash
# The README's test command: installs what is missing (scripts/setup.sh), then type-checks, lints
# and runs every test, unit and integration, in one node:test run. The integration tests bring up a
# local cluster named "test" (subnet 10.78.0.0/24) on real runc, CRIU, btrfs, SSH and Redis, and
# this script removes it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "== typecheck"; npx tsc --noEmit -p .
echo "== lint"; npx eslint . && npx prettier --check . >/dev/null
echo "== dependency rules (.dependency-cruiser.cjs)"; npm run -s deps
cleanup() { ./bin/ferry --cluster test cluster down >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup # a crashed earlier run must not leave state that changes this one
echo "== tests"
mapfile -t files < <(find api agent controller cli cluster lib test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
