#!/usr/bin/env bash
# A real human voice to judge on (make real-voice): the English prompts of the Asterisk PBX,
# recorded by Allison Smith (CC BY-SA 3.0), from Debian's packages, and three other real
# speakers for the speaker-similarity calibration. Nothing is installed: `apt-get download`
# fetches the .deb files (no root) and `dpkg-deb -x` unpacks them under $CACHE.
#
#   data/real/allison       217 prompts of >= 3 words (no digits, no sound descriptions),
#                           G.722 wideband (16 kHz), transcripts in texts.tsv, a manifest
#                           (allison.tsv) and pocketsphinx's forced phone labels (186 align)
#   data/real/allison-8k    the same prompts from the 8 kHz telephone-band package, resampled
#   data/real/others/NAME   12 prompts each of the French (June Wallack), Italian (Carlo) and
#                           Russian voices: the calibration's other speakers
#                           (eval resynth / continue --reference-voices data/real/others);
#                           the Spanish package is Allison again, so it is not one of them
#
# Env: CACHE (data/real/debs), OUT (data/real); SL for tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/real_voices.sh  # REAL_OTHERS
SL=${SL:-.venv/bin/speechlm}
CACHE=${CACHE:-data/real/debs}
OUT=${OUT:-data/real}
mkdir -p "$CACHE"

fetch() {  # fetch PACKAGE: the .deb into $CACHE, unpacked into $CACHE/PACKAGE
  local pkg=$1
  if [ ! -d "$CACHE/$pkg" ]; then
    if ! ls "$CACHE/${pkg}"_*.deb >/dev/null 2>&1; then
      (cd "$CACHE" && apt-get download "$pkg" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
    fi
    ls "$CACHE/${pkg}"_*.deb >/dev/null 2>&1 || { echo "build_real_voice: could not download $pkg (apt-get download)" >&2; exit 2; }
    rm -rf "$CACHE/$pkg.tmp"
    dpkg-deb -x "$CACHE/${pkg}"_*.deb "$CACHE/$pkg.tmp"
    mv "$CACHE/$pkg.tmp" "$CACHE/$pkg"
  fi
}

for p in asterisk-core-sounds-en asterisk-core-sounds-en-g722 asterisk-core-sounds-en-wav \
         asterisk-core-sounds-fr-g722 asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722; do
  fetch "$p"
done
TEXTS=$CACHE/asterisk-core-sounds-en/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz
S=usr/share/asterisk/sounds

[ -f "$OUT/allison/source.json" ] || $SL corpus real --quiet --format g722 --texts "$TEXTS" \
  --sounds "$CACHE/asterisk-core-sounds-en-g722/$S/en_US_f_Allison" --out "$OUT/allison"
[ -f "$OUT/allison-8k/source.json" ] || $SL corpus real --quiet --format wav --texts "$TEXTS" \
  --sounds "$CACHE/asterisk-core-sounds-en-wav/$S/en_US_f_Allison" --out "$OUT/allison-8k"
for v in $REAL_OTHERS; do
  name=${v#*/}
  [ -f "$OUT/others/$name/source.json" ] || $SL corpus real --quiet --format g722 \
    --max-utterances 12 --sounds "$CACHE/asterisk-core-sounds-${v%%/*}/$S/$name" \
    --out "$OUT/others/$name"
done
echo "real voices in $OUT: allison, allison-8k; calibration voices in $OUT/others"
