# Shared by build-deb.sh and build-rpm.sh (sourced, not run).
# REPO must be set to the checkout's top directory.

# What goes into the packages' source tree: the Python package, its metadata, the
# unit, the cloud-init examples/schema and the packaging itself. Not tests, bench,
# scripts or CI files, and no caches or build output.
SOURCE_ITEMS=(pyproject.toml README.md kbootd units cloud-init packaging)

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# kbootd/version.py's __version__, read without importing kbootd.
kbootd_version() {
  sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' "$REPO/kbootd/version.py"
}

# Seconds since the epoch of the checkout's last commit (reproducible dates), or now.
source_epoch() {
  git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s
}

# "git 1a2b3c4d" (+ ", with uncommitted changes"), or "a tree without git".
source_desc() {
  local rev
  if rev=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null); then
    if [ -n "$(git -C "$REPO" status --porcelain -- "${SOURCE_ITEMS[@]}" 2>/dev/null)" ]; then
      echo "git $rev, with uncommitted changes"
    else
      echo "git $rev"
    fi
  else
    echo "a tree without git"
  fi
}

# Copy the working tree's source items into DEST (the build sees what the developer
# sees, committed or not; CI builds a clean checkout).
assemble_source() {
  local dest=$1 item
  mkdir -p "$dest"
  for item in "${SOURCE_ITEMS[@]}"; do
    [ -e "$REPO/$item" ] || die "$REPO/$item is missing"
    cp -R "$REPO/$item" "$dest/"
  done
  for item in "$REPO"/LICENSE*; do
    [ -e "$item" ] && cp "$item" "$dest/"
  done
  find "$dest" \( -name __pycache__ -o -name '*.egg-info' -o -name '*.pyc' \) -prune \
    -exec rm -rf {} +
}

# The build tools' environment: no pyenv shims, venvs or CI variables (pyenv's
# python3 shim breaks dpkg-buildpackage; rpmbuild must see Debian's python3).
clean_env() {
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="${HOME:-/root}" LC_ALL=C.UTF-8 \
    ${SOURCE_DATE_EPOCH:+SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH} "$@"
}
