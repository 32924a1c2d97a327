#!/usr/bin/env bash
# stemctl_links.sh STEMCTL BUILD_DIR: the command-line client carries no audio library (issue 13).
#   1. ldd STEMCTL names none of libportaudio, librubberband, libsamplerate, libsndfile, libsystemd;
#   2. stemctl's link command (BUILD_DIR/build.ninja, the presets' generator) names none of them and
#      none of the daemon's layer libraries but stemd_ctl (its own text and JSON), stemd_osc and
#      stemd_base. The linker drops a library
#      nothing calls (--as-needed), so (1) alone would pass with the whole daemon on the link line.
# Exit 0 pass, 1 fail, 77 skip (no ldd, or another generator than Ninja for check 2).
set -uo pipefail
stemctl=${1:?usage: stemctl_links.sh STEMCTL BUILD_DIR}
build=${2:?usage: stemctl_links.sh STEMCTL BUILD_DIR}
audio_libs='libportaudio|librubberband|libsamplerate|libsndfile|libsystemd'
fail=0

command -v ldd >/dev/null || { echo "stemctl_links: SKIP (no ldd)"; exit 77; }
linked=$(ldd "$stemctl") || { echo "stemctl_links: ldd $stemctl failed"; exit 1; }
if bad=$(grep -E "$audio_libs" <<<"$linked"); then
  echo "stemctl_links: FAIL: $stemctl loads audio libraries:"; echo "$bad"; fail=1
else
  echo "stemctl_links: ldd: no audio library ($(grep -c '=>' <<<"$linked") libraries loaded)"
fi

ninja_file=$build/build.ninja
if [[ ! -f $ninja_file ]]; then
  echo "stemctl_links: SKIP link-line check (no $ninja_file)"
  [[ $fail == 0 ]] && exit 77 || exit 1
fi
# The link edge of src/stemctl and its indented variables, up to the next blank line.
rule=$(awk '/^build src\/stemctl: /{on=1} on&&/^$/{exit} on' "$ninja_file")
if [[ -z $rule ]]; then echo "stemctl_links: FAIL: no link rule for src/stemctl in $ninja_file"; exit 1; fi
if bad=$(grep -oE "$audio_libs|PORTAUDIO|RUBBERBAND|SAMPLERATE|SNDFILE|SYSTEMD|libstemd_[a-z]+\.a" <<<"$rule" |
         grep -vE '^libstemd_(ctl|osc|base)\.a$' | sort -u); then
  echo "stemctl_links: FAIL: stemctl's link line names:"; echo "$bad"; fail=1
else
  echo "stemctl_links: link line: stemd_ctl, stemd_osc, stemd_base and no audio library"
fi
exit $fail
