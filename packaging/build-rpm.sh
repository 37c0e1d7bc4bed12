#!/bin/bash
# Build kbootd's RPM packages from this checkout:
#   packaging/build-rpm.sh [OUTDIR]      (default OUTDIR: dist/)
# Assembles the source tree (as build-deb.sh does) into kbootd-VERSION.tar.gz and runs
# rpmbuild -ba on packaging/rpm/kbootd.spec with the version from kbootd/version.py.
# Prints the binary .rpm's path on the last line of stdout; build output on stderr.
#
# On an RPM distribution (Fedora, EL) the spec uses the distribution's macros and
# rpmbuild checks BuildRequires as usual. On Debian, where rpmbuild comes from the
# `rpm` package, the RPM database knows none of the installed (dpkg) packages, so
# the build runs with --nodeps after this script has checked the Debian equivalents
# of the BuildRequires itself.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=packaging/common.sh
. "$HERE/common.sh"

OUT=$(realpath -m "${1:-$REPO/dist}")
VERSION=$(kbootd_version)
[ -n "$VERSION" ] || die "no __version__ in kbootd/version.py"
command -v rpmbuild >/dev/null || die "rpmbuild missing (Debian: apt-get install rpm)"

DEBIAN=()
if [ -e /etc/debian_version ] && ! rpm -q python3-devel >/dev/null 2>&1; then
  missing=()
  command -v help2man >/dev/null || missing+=(help2man)
  for mod in build installer shtab setuptools wheel; do
    clean_env python3 -c "import $mod" 2>/dev/null || missing+=("python3-$mod")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing build tools: apt-get install ${missing[*]/python3-shtab/python3-shtab}"
  # --nodeps: see above. Debian's rpm runs brp-compress (man page compression) with
  # its #!/bin/sh, which is dash there: it needs bash (as /bin/sh is on Fedora).
  post=$(rpm --eval '%{__os_install_post}' \
         | sed -e '/^ *$/d' -e 's|^ *||' -e 's|^/usr/lib/rpm/brp-compress|/bin/bash &|' | paste -sd ';')
  DEBIAN=(--nodeps --define "__os_install_post $post")
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kbootd-rpm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
assemble_source "$WORK/src/kbootd-$VERSION"
EPOCH=$(source_epoch)
tar -C "$WORK/src" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
  -czf "$WORK/SOURCES/kbootd-$VERSION.tar.gz" "kbootd-$VERSION"
# The spec, with the version and the changelog date filled in, so that the source
# RPM's copy builds (and rpmlint parses it) without any --define.
DATE=$(LC_ALL=C date -u -d "@$EPOCH" '+%a %b %d %Y')
{
  printf '%%global kbootd_version %s\n%%global kbootd_date %s\n' "$VERSION" "$DATE"
  sed -e '/^%changelog/,$ { s/%{kbootd_version}/'"$VERSION"'/g; s/%{kbootd_date}/'"$DATE"'/g }' \
    "$HERE/rpm/kbootd.spec"
} > "$WORK/SPECS/kbootd.spec"

log "building kbootd $VERSION in $WORK ($(source_desc))"
SOURCE_DATE_EPOCH=$EPOCH clean_env rpmbuild -ba "${DEBIAN[@]}" \
  --define "_topdir $WORK" \
  "$WORK/SPECS/kbootd.spec" >&2 || die "rpmbuild failed (output above)"

mkdir -p "$OUT"
cp "$WORK"/SRPMS/kbootd-"$VERSION"-*.src.rpm "$OUT/"
RPM=
for f in "$WORK"/RPMS/noarch/kbootd-"$VERSION"-*.noarch.rpm; do
  cp "$f" "$OUT/"
  RPM=$OUT/${f##*/}
done
[ -n "$RPM" ] && [ -s "$RPM" ] || die "no kbootd-$VERSION-*.noarch.rpm was built"
log "built $(cd "$OUT" && echo kbootd-"$VERSION"-*.rpm)"
echo "$RPM"
