#!/usr/bin/env bash
# Set up speechlm on a fresh Debian/Ubuntu machine: the system packages (synthesizers for the
# corpus, sox, libsndfile), a virtual environment in .venv, and the package with its test tools.
# Safe to re-run: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="flite festival festvox-kallpc16k festvox-us-slt-hts espeak-ng sox libsndfile1"
if command -v dpkg >/dev/null 2>&1; then
  missing=""
  for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "setup: installing system packages:$missing" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
else
  echo "setup: not a Debian system; install by hand: $PKGS" >&2
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# torch and torchaudio pinned to a pair known to work together (torchaudio.load is not used)
.venv/bin/python -m pip install -q "torch==2.14.1" "torchaudio==2.11.0" 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[dev,eval]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import speechlm, torch, torchaudio, soundfile, sklearn, librosa, pyworld" \
  || { echo "setup: the environment is incomplete (see the pip output above)" >&2; exit 1; }
echo "setup: ready (.venv)" >&2
