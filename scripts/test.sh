#!/usr/bin/env bash
# Runs the whole test suite inside .venv (created by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MUSICJUDGE_CACHE="${MUSICJUDGE_CACHE:-$PWD/.mj-cache}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
