#!/usr/bin/env bash
# Print an ALSA configuration with a capture device that plays a raw audio file, for running
# the PyAudio microphone backend without a sound card (CI, a developer's desktop):
#
#   scripts/alsa-file-pcm.sh speech.raw bwvfile > /tmp/asound.conf
#   ALSA_CONFIG_PATH=/tmp/asound.conf .venv/bin/python ...   # PortAudio lists "bwvfile"
#
# RAWFILE is headerless samples in the format the stream opens (bwv: S16_LE, the configured
# rate and channels). The device is ALSA's `file` plugin reading RAWFILE (`infile`) over the
# `null` plugin, both built into libasound2 (no alsa-plugins package needed). The null plugin
# keeps no time, so capture runs as fast as the reader takes it, and after the end of the
# file it gives silence. ALSA_CONFIG_PATH replaces the system's alsa.conf, so nothing else
# is listed. PortAudio 19.6 (Debian 12) asserts in its device scan unless a "default" or
# "dmix" device exists, hence the null "default".
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 RAWFILE [NAME]" >&2
  exit 2
fi
infile=$(realpath -- "$1")
name=${2:-bwvfile}
case $name in
  *[!A-Za-z0-9_]* | "") echo "$0: NAME must be letters, digits and _" >&2; exit 2 ;;
esac
case $infile in
  *\"* | *\\*) echo "$0: RAWFILE must not contain quotes or backslashes" >&2; exit 2 ;;
esac
cat <<CONF
pcm.$name {
    type file
    slave.pcm "bwv_null"
    file "/dev/null"
    infile "$infile"
    format "raw"
}
pcm.bwv_null {
    type null
}
pcm.default {
    type null
}
CONF
