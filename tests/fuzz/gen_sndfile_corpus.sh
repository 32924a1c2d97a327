#!/usr/bin/env bash
# Writes the seed corpus of fuzz_sndfile_load (tests/fuzz/corpus/sndfile/): small valid files
# of every container and encoding stemd is likely to meet (WAV 8/16/24/32f/μ-law/ADPCM, mono,
# stereo, 3 channels, 44.1 kHz; AIFF/AIFC; FLAC; Ogg Vorbis; W64, CAF, AU) and a few truncated
# or corrupted variants. Needs sox. Keep the whole corpus well under 200 KB.
# The fuzzer's preload limit is 2048 stereo frames: files up to ~2000 frames load whole, the
# longer ones (≥ 2500 frames) take the streamed path.
#   usage: tests/fuzz/gen_sndfile_corpus.sh [OUTDIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/corpus/sndfile}"
mkdir -p "$out"
cd "$out"

gen() {  # gen FRAMES CHANNELS RATE OUT [sox output options…]
  local frames=$1 ch=$2 rate=$3 dst=$4
  shift 4
  sox -D -R -n -r "$rate" -c "$ch" "$@" "$dst" synth "${frames}s" sine 440 gain -3
}

# in memory (≤ 2048 frames)
gen 1000 2 48000 wav16_stereo.wav -b 16
gen 600  1 48000 wav16_mono.wav -b 16
gen 500  2 48000 wav24_stereo.wav -b 24
gen 700  1 48000 wavf32_mono.wav -e floating-point -b 32
gen 300  2 48000 wavf64_stereo.wav -e floating-point -b 64
gen 1500 1 48000 wav8_mono.wav -b 8
gen 1000 1 48000 wav_ulaw.wav -e u-law
gen 1000 1 48000 wav_alaw.wav -e a-law
gen 1017 1 48000 wav_ima_adpcm.wav -e ima-adpcm
gen 1000 1 48000 wav_ms_adpcm.wav -e ms-adpcm
gen 400  3 48000 wavex_3ch.wav -b 16
gen 441  2 44100 wav16_44k.wav -b 16
gen 1000 2 48000 aiff16_stereo.aiff -b 16
gen 800  1 48000 aifc_float.aifc -e floating-point -b 32
gen 600  2 48000 w64_16.w64 -b 16
gen 600  2 48000 caf_16.caf -b 16
gen 600  1 48000 au_16.au -b 16
gen 1000 2 48000 flac16_stereo.flac -b 16
gen 1000 1 48000 flac24_mono.flac -b 24
# streamed (> 2048 frames)
gen 4000 1 48000 wav16_mono_long.wav -b 16
gen 2600 1 48000 wavf32_mono_long.wav -e floating-point -b 32
gen 3000 1 48000 wav8_mono_long.wav -b 8
gen 9000 2 48000 flac16_stereo_long.flac -b 16
gen 6000 2 48000 ogg_vorbis_stereo.ogg -C 0
gen 3000 1 48000 ogg_vorbis_mono.ogg -C -1

# broken, one way each
head -c 2000 wav16_mono_long.wav > trunc_wav_data.wav             # data chunk cut short
head -c 40 wav16_stereo.wav > trunc_wav_header.wav                 # inside the fmt chunk
head -c 1500 flac16_stereo_long.flac > trunc_flac.flac
head -c 3000 ogg_vorbis_stereo.ogg > trunc_ogg.ogg
head -c 600 aiff16_stereo.aiff > trunc_aiff.aiff
patch() {  # patch SRC DST OFFSET HEXBYTES: copy SRC and overwrite bytes at OFFSET
  cp "$1" "$2"
  printf "$(echo "$4" | sed 's/../\\x&/g')" | dd of="$2" bs=1 seek="$3" conv=notrunc status=none
}
patch wav16_stereo.wav bad_wav_zero_channels.wav 22 0000         # fmt: channels = 0
patch wav16_stereo.wav bad_wav_many_channels.wav 22 ff00         # fmt: channels = 255
patch wav16_stereo.wav bad_wav_zero_rate.wav 24 00000000         # fmt: sample rate = 0
patch wav16_stereo.wav bad_wav_huge_data.wav 40 ffffff7f         # data chunk claims 2 GB
patch wav16_stereo.wav bad_wav_bits.wav 34 0d00                  # 13 bits per sample
patch flac16_stereo.flac bad_flac_streaminfo.flac 18 ffffffff    # STREAMINFO rate/channels bits
ls -l "$out" | awk 'NR>1 {n++; s+=$5} END {printf "%d seeds, %d bytes\n", n, s}'
