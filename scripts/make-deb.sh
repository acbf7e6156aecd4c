#!/bin/sh
# Builds earshot_<version>-<revision>_<arch>.deb from an already built binary (`make deb` builds it first).
#   sh scripts/make-deb.sh [BIN] [MANPAGES_DIR] [OUT_DIR]
#     BIN           the release binary (default .build/release/earshot), installed stripped as /usr/bin/earshot
#     MANPAGES_DIR  man pages from swift-argument-parser's generate-manual plugin (earshot.1, earshot.run.1, …)
#     OUT_DIR       where the .deb goes (default .build/deb); prints its path last
# The version is EarshotVersion.string (Sources/EarshotDaemon/Version.swift) and must head
# packaging/deb/changelog; Depends is computed from the binary's NEEDED libraries by dpkg-shlibdeps, never
# written by hand. Libraries the binary opens on first use (dlopen, not NEEDED, so dpkg-shlibdeps cannot see
# them) are listed in LAZY_LIBS below and go to Recommends: libmosquitto1 for the `mqtt` sink, libcairo2 for
# `earshot spectrogram` (without them those two fail with a message naming the package; the rest works).
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-.build/release/earshot}
MANPAGES=${2:-.build/man}
OUT=${3:-.build/deb}
STRIP=${STRIP:-strip}

version=$(sed -n 's/^ *public static let string = "\([^"]*\)".*/\1/p' Sources/EarshotDaemon/Version.swift)
[ -n "$version" ] || { echo "make-deb: no version in Sources/EarshotDaemon/Version.swift" >&2; exit 1; }
# The Debian revision (the package of upstream version 0.1.0 is 0.1.0-1).
revision=${DEB_REVISION:-1}
debversion=$version-$revision
arch=$(dpkg --print-architecture)
[ -x "$BIN" ] || { echo "make-deb: $BIN is not built (make release)" >&2; exit 1; }
changelog_version=$(sed -n '1s/^earshot (\([^)]*\)).*/\1/p' packaging/deb/changelog)
if [ "$changelog_version" != "$debversion" ]; then
    echo "make-deb: packaging/deb/changelog starts with $changelog_version, the package is $debversion: add a changelog entry" >&2
    exit 1
fi
ls "$MANPAGES"/earshot.1 >/dev/null 2>&1 || { echo "make-deb: no man pages in $MANPAGES (make man)" >&2; exit 1; }

mkdir -p "$OUT"
stage=$OUT/earshot_${debversion}_${arch}
rm -rf "$stage"
umask 022
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/usr/lib/sysusers.d" \
    "$stage/usr/lib/tmpfiles.d" "$stage/etc/earshot" "$stage/usr/share/doc/earshot/examples" \
    "$stage/usr/share/man/man1" "$stage/usr/share/lintian/overrides"

# The binary, stripped (symbols are not needed to run it).
install -m 0755 "$BIN" "$stage/usr/bin/earshot"
$STRIP --strip-all --remove-section=.comment --remove-section=.note "$stage/usr/bin/earshot"

# Units, with the paths of the package (/usr/bin, /usr/share/doc) instead of make install's /usr/local.
for u in earshot.service earshot@.service earshot.socket; do
    sed -e 's|/usr/local/bin/|/usr/bin/|g' -e 's|/usr/local/share/doc/|/usr/share/doc/|g' \
        -e 's|/usr/local/lib/systemd/system/|/lib/systemd/system/|g' "systemd/$u" > "$stage/lib/systemd/system/$u"
    chmod 0644 "$stage/lib/systemd/system/$u"
done
install -m 0644 systemd/earshot.sysusers.conf "$stage/usr/lib/sysusers.d/earshot.conf"
install -m 0644 systemd/earshot.tmpfiles.conf "$stage/usr/lib/tmpfiles.d/earshot.conf"
install -m 0644 config/earshot.yaml "$stage/etc/earshot/earshot.yaml"

# Documentation and examples (examples are documentation: not executable).
doc=$stage/usr/share/doc/earshot
install -m 0644 README.md "$doc/README.md"
install -m 0644 docs/protocol.md docs/metrics.md docs/architecture.md "$doc/"
install -m 0644 packaging/deb/copyright "$doc/copyright"
gzip -9nc packaging/deb/changelog > "$doc/changelog.Debian.gz"
install -m 0644 examples/README.md examples/earshot_logmel_client.py "$doc/examples/"
install -m 0644 clients/python/examples/onnx_live.py "$doc/examples/"
install -m 0644 clients/python/earshot_client/schema/protocol-v1.json "$doc/protocol-v1.schema.json"

# A man page per command, compressed. generate-manual names a subcommand's page earshot.run.1 with NAME
# "earshot run", which whatis/lexgrog cannot index: it becomes earshot-run.1 with NAME earshot-run (as git
# does: `man earshot-run`), while its synopsis still reads "earshot run".
for m in "$MANPAGES"/*.1; do
    name=$(basename "$m" .1)
    sub=${name#earshot.}
    if [ "$name" = earshot ]; then
        sed -e 's/^\.Nd "\(.*\)"$/.Nd \1/' "$m" > "$stage/usr/share/man/man1/earshot.1"
    else
        upper=$(printf '%s' "$sub" | tr 'a-z' 'A-Z')
        sed -e "s/^\.Dt .*/.Dt EARSHOT-$upper 1/" -e "s/^\.Nm \"earshot $sub\"\$/.Nm earshot-$sub/" \
            -e "s/^\.Nm\$/.Nm \"earshot $sub\"/" -e 's/^\.Nd "\(.*\)"$/.Nd \1/' "$m" \
            > "$stage/usr/share/man/man1/earshot-$sub.1"
    fi
done
gzip -9n "$stage"/usr/share/man/man1/*.1
chmod 0644 "$stage"/usr/share/man/man1/*.gz

install -m 0644 packaging/deb/lintian-overrides "$stage/usr/share/lintian/overrides/earshot"

# Run-time dependencies from the binary (a throw-away debian/control is all dpkg-shlibdeps needs).
shlib=$(mktemp -d)
mkdir -p "$shlib/debian"
printf 'Source: earshot\n\nPackage: earshot\nArchitecture: any\n' > "$shlib/debian/control"
abs_bin=$(cd "$stage/usr/bin" && pwd)/earshot
depends=$(cd "$shlib" && dpkg-shlibdeps -O "$abs_bin" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
rm -rf "$shlib"
[ -n "$depends" ] || { echo "make-deb: dpkg-shlibdeps found no dependencies for $BIN" >&2; exit 1; }
# Packed relative relocations (lld -z pack-relative-relocs, Package.swift) need glibc 2.36; dpkg-shlibdeps
# looks at symbols only and misses that version requirement (GLIBC_ABI_DT_RELR).
if readelf -V "$abs_bin" 2>/dev/null | grep -q GLIBC_ABI_DT_RELR; then
    # Only ever raise it: a build host with a newer glibc may already require more.
    libc=$(printf '%s' "$depends" | sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p')
    if [ -n "$libc" ] && dpkg --compare-versions "$libc" lt 2.36; then
        depends=$(printf '%s' "$depends" | sed 's/libc6 (>= [0-9.]*)/libc6 (>= 2.36)/')
    fi
fi
# Opened with dlopen by Sources/CMosquitto and Sources/CCairo (the versions whose functions they resolve).
LAZY_LIBS="libmosquitto1 (>= 2.0), libcairo2 (>= 1.10)"
# postinst runs systemd-sysusers (as debhelper's dh_installsysusers: the same alternatives).
depends="$depends, systemd | systemd-standalone-sysusers | systemd-sysusers"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s#@VERSION@#$debversion#" -e "s#@ARCH@#$arch#" -e "s#@DEPENDS@#$depends#" -e "s#@RECOMMENDS@#$LAZY_LIBS#" -e "s#@INSTALLED_SIZE@#$size#" \
    packaging/deb/control.in > "$stage/DEBIAN/control"
install -m 0644 packaging/deb/conffiles "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$stage/DEBIAN/$s"; done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | grep -v '^etc/' | LC_ALL=C sort \
    | xargs md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"

deb=$OUT/earshot_${debversion}_${arch}.deb
fakeroot dpkg-deb -Zxz --root-owner-group --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb"
