#!/usr/bin/env bash
# Create or reuse .venv at the repo root with musicjudge installed (editable).
# torch==2.13.0 goes in first: it resolves to the local CPU wheel; installing anything that
# depends on torch before it would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.musicjudge-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]"
# tinysoundfont declares numpy<2 style pins it does not need; its wheel works as is.
.venv/bin/python -m pip install -q --no-deps tinysoundfont==0.3.7
# torchcrepe hard-depends on torchaudio (none exists for this torch); musicjudge does not need
# its loader, so install without deps and never import torchaudio.
.venv/bin/python -m pip install -q --no-deps torchcrepe==0.0.24 resampy==0.4.3
# Test-only: the 'muq' package is the reference of tests/reward/test_muq.py (musicjudge has its own
# MuQ). It declares torchaudio, nnAudio and x_clip (-> torchvision), none of which the tests need
# (they supply stand-ins), so it goes in without deps with the two small ones it imports;
# 'pip check' reports those three as missing, on purpose.
.venv/bin/python -m pip install -q --no-deps muq==0.1.0 einops==0.8.2 easydict==1.14
.venv/bin/python -m pip uninstall -q -y torchaudio 2>/dev/null || true
touch "$stamp"
