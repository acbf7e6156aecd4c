#!/bin/sh
# Installs the Debian packages Earshot needs to build and test, if any are missing.
# Build: libasound2-dev (ALSA), libfftw3-dev (FFTW single precision), pkg-config.
# Tests: pulseaudio, pulseaudio-utils, libasound2-plugins (ALSA "pulse" device), alsa-utils,
# systemd (systemd-analyze verify/security on the units), python3 + numpy (the example client test).
set -eu
PACKAGES="libasound2-dev libfftw3-dev pkg-config pulseaudio pulseaudio-utils libasound2-plugins alsa-utils systemd python3 python3-numpy"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
