#!/usr/bin/env bash
# All checks and tests: installs what is missing, then ruff, mypy --strict, and the whole pytest suite
# (unit, real-kernel netns, integration with real processes, podman and etcd). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
ruff check .
ruff format --check services multinetctl tests bench scripts
echo "== mypy --strict"
mypy services multinetctl bench scripts tests
echo "== pytest"
python3 -m pytest -q "$@"
echo "== leak check"
left=$(ip netns list | grep -E '^(mnt[0-9]+-|multinet-|mnbench-)' || true)
if [ -n "$left" ]; then echo "leaked network namespaces:"; echo "$left"; exit 1; fi
echo "all checks passed"
