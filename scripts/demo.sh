#!/usr/bin/env bash
# The main job: installs what is missing, then runs the multinet demo (scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec python3 scripts/demo.py "$@"
