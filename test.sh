#!/usr/bin/env bash
# Run the whole test suite (unit tests, then tests on real containers).
set -euo pipefail
cd "$(dirname "$0")"
exec .venv/bin/pytest -v -rs --durations=25 "$@"
