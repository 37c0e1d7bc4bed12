#!/bin/bash
# Build kbootd's Debian packages from this checkout:
#   packaging/build-deb.sh [OUTDIR]      (default OUTDIR: dist/)
# Assembles a source tree in a temporary directory (the working tree's kbootd/,
# pyproject.toml, README.md, units/, cloud-init/, packaging/, plus packaging/deb/debian
# as debian/ with a changelog for kbootd/version.py's version), builds the native
# source package and the binary .deb with dpkg-buildpackage, and copies them to
# OUTDIR. Prints the .deb's path on the last line of stdout; build output on stderr.
# Needs the Build-Depends of packaging/deb/debian/control (dpkg-buildpackage checks).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=packaging/common.sh
. "$HERE/common.sh"

OUT=$(realpath -m "${1:-$REPO/dist}")
VERSION=$(kbootd_version)
[ -n "$VERSION" ] || die "no __version__ in kbootd/version.py"
command -v dpkg-buildpackage >/dev/null || die "dpkg-buildpackage missing (apt-get install dpkg-dev debhelper)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kbootd-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TREE=$WORK/kbootd-$VERSION
assemble_source "$TREE"
cp -R "$HERE/deb/debian" "$TREE/debian"

EPOCH=$(source_epoch)
cat > "$TREE/debian/changelog" <<CHANGELOG
kbootd ($VERSION) unstable; urgency=medium

  * kbootd $VERSION, built from $(source_desc).

 -- kbootd developers <dev@kbootd.invalid>  $(LC_ALL=C date -u -R -d "@$EPOCH")
CHANGELOG

log "building kbootd $VERSION in $TREE"
(cd "$TREE" && clean_env dpkg-buildpackage -us -uc --build=source,all) >&2 \
  || die "dpkg-buildpackage failed (output above)"

mkdir -p "$OUT"
shopt -s nullglob
for f in "$WORK"/kbootd_"$VERSION"*; do
  cp "$f" "$OUT/"
done
DEB=$OUT/kbootd_${VERSION}_all.deb
[ -s "$DEB" ] || die "no $DEB was built"
log "built $(cd "$OUT" && echo kbootd_"$VERSION"*)"
echo "$DEB"
