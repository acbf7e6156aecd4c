#!/bin/sh
# Installs the Debian packages Earshot needs, if any are missing, for one purpose:
#   sh scripts/install-deps.sh build   what `make release` / `make install` / `make demo` need on the sensor
#                                      box: libasound2-dev (ALSA), libfftw3-dev (FFTW single precision),
#                                      pkg-config, binutils (strip), and the libraries the binary links:
#                                      libmosquitto-dev (the MQTT sink), libcairo2-dev (the pictures of
#                                      `earshot spectrogram`) — and nothing else.
#   sh scripts/install-deps.sh test    build + what `make test` needs on a development or CI machine:
#                                      pulseaudio, pulseaudio-utils, libasound2-plugins (ALSA "pulse"
#                                      device), alsa-utils, systemd (systemd-analyze verify/security,
#                                      sysusers/tmpfiles), python3 + numpy (the example client test),
#                                      prometheus (promtool check metrics), socat + jq (the documented
#                                      one-liners, run against a live daemon), mosquitto + mosquitto-clients
#                                      + openssl (the MQTT tests' own broker, subscriber and TLS CA),
#                                      python3-pil (Pillow decodes the spectrogram PNGs), tmux (`earshot top`
#                                      in a pane), sox + espeak-ng + hydrogen-drumkits (healthy speech, drums
#                                      and noise that must raise no input-health alarm), python3-pytest +
#                                      python3-jsonschema + python3-venv (the Python client's tests in a
#                                      venv, the protocol schema check), lintian + dpkg-dev (dpkg-shlibdeps)
#                                      + fakeroot (make deb and its test).
# Without an argument: test (the historical behaviour of `make deps`).
# One package per line (several branches add to these lists).
set -eu
BUILD="
libasound2-dev
libfftw3-dev
pkg-config
binutils
libmosquitto-dev
libcairo2-dev
"
TEST="
pulseaudio
pulseaudio-utils
libasound2-plugins
alsa-utils
systemd
python3
python3-numpy
prometheus
socat
jq
mosquitto
mosquitto-clients
openssl
python3-pil
tmux
sox
espeak-ng
hydrogen-drumkits
python3-pytest
python3-jsonschema
python3-venv
lintian
dpkg-dev
fakeroot
"
# bench/onset_eval.py (not CI): the drum kits and recordings it builds its material from (pip: librosa aubio essentia);
# bench/symbol_order.py: valgrind
BENCH="
valgrind
hydrogen-drumkits
lincity-ng-data
asterisk-core-sounds-en-wav
espeak-ng
alsa-utils
"
case "${1:-test}" in
    build) PACKAGES="$BUILD" ;;
    test) PACKAGES="$BUILD $TEST" ;;
    bench) PACKAGES="$BUILD $BENCH" ;;
    *) echo "usage: $0 build|test|bench" >&2; exit 64 ;;
esac
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
