#!/bin/bash
# Build (once) and cache the Debian root filesystem that every e2e test host boots from.
# Usage: SUITE=bookworm|trixie build-image.sh [CACHE_DIR]  -> the cached .tar.zst on stdout
# Needs: root, debootstrap, zstd, network to the Debian mirror (only on a cache miss).
# The cache key hashes this file, the suite, the mirror and the package list, so editing the
# recipe or the packages below rebuilds the image; everything else reuses it (~70 s saved).
set -euo pipefail
CACHE=${1:-${KBOOTD_E2E_CACHE:-/var/cache/kbootd-e2e}}
SUITE=${SUITE:-bookworm}
# The Debian mirror this machine's apt already uses (MIRROR= / SECURITY_MIRROR= override):
# the first URI of the deb822 sources that is not the security archive, else sources.list.
sources_uris() {
  { awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources
    awk '$1 == "deb" {print ($2 ~ /^\[/) ? $3 : $2}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list
  } 2>/dev/null || true
}
MIRROR=${MIRROR:-$(sources_uris | grep -v -- '-security' | grep -m1 '/debian/\?$' || true)}
[ -n "$MIRROR" ] || { echo "build-image.sh: no Debian mirror in the apt sources; set MIRROR=" >&2; exit 3; }
MIRROR=${MIRROR%/}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(sources_uris | grep -m1 -- '-security/\?$' || true)}
SECURITY_MIRROR=${SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}
SECURITY_MIRROR=${SECURITY_MIRROR%/}
# What kbootd needs at run time from Debian (its deb's Depends), plus systemd and cloud-init.
# python3-cffi-backend is named explicitly: debootstrap does not resolve the virtual
# python3-cffi-backend-api-* that python3-cryptography depends on and would leave
# cloud-init and python3-kubernetes unconfigured, with only a warning.
PKGS=systemd,systemd-sysv,dbus,cloud-init,iproute2,python3,python3-systemd,python3-yaml
PKGS=$PKGS,python3-cryptography,python3-cffi-backend,python3-requests,python3-kubernetes
PKGS=$PKGS,python3-shtab
# A real etcd for the HA e2e (test_e2e_ha.py starts it from the flags of the etcd manifest
# kbootd writes, standing in for the etcd static Pod; etcdctl counts the members): 3.4 on
# Debian 12, 3.5 on 13.
PKGS=$PKGS,etcd-server,etcd-client${EXTRA_PKGS:+,$EXTRA_PKGS}

KEY=$( { cat "$0"; printf '%s %s %s' "$SUITE" "$MIRROR" "$PKGS"; } | sha256sum | cut -c1-12)
TAR=$CACHE/rootfs-$SUITE-$KEY.tar.zst
mkdir -p "$CACHE"
# One builder at a time (parallel test runs, several engineers on one machine).
exec 9>"$CACHE/.build.lock"
flock -w 900 9
if [ -s "$TAR" ]; then echo "$TAR"; exit 0; fi

TMP=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
R=$TMP/root
debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$R" "$MIRROR" >&2
# debootstrap can report success with half-configured packages: verify.
if chroot "$R" dpkg --audit | grep -q .; then chroot "$R" dpkg --audit >&2; exit 1; fi

# --- customisation ---------------------------------------------------------------------
: > "$R/etc/machine-id"                          # nspawn gives each boot its own id
ln -sf /etc/machine-id "$R/var/lib/dbus/machine-id"
echo 'LANG=C.UTF-8' > "$R/etc/default/locale"   # minbase has no 'locales' package
cat > "$R/etc/cloud/cloud.cfg.d/90-e2e.cfg" <<'CFG'
# e2e image: only the NoCloud seed is used; C.UTF-8 needs no locale-gen (else: degraded)
datasource_list: [NoCloud, None]
locale: C.UTF-8
CFG
cat > "$R/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SRC
# The package's own etcd.service would hold 2379/2380 (preflight's port checks) and data in
# /var/lib/etcd (kbootd's data dir, which preflight wants empty): the e2e starts etcd itself.
rm -f "$R"/etc/systemd/system/*.wants/etcd.service
ln -sf /dev/null "$R/etc/systemd/system/etcd.service"
rm -rf "${R:?}"/var/lib/etcd/*
# Timers that only add noise to test journals.
for t in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer; do
  rm -f "$R/etc/systemd/system/timers.target.wants/$t"
done
chroot "$R" apt-get clean
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/log/*.log "$R"/var/cache/debconf/*-old
# ---------------------------------------------------------------------------------------
tar --numeric-owner --xattrs --acls -C "$R" -cf - . | zstd -T0 -q -o "$TAR.tmp"
mv "$TAR.tmp" "$TAR"
echo "$TAR"
