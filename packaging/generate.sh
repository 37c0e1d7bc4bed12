#!/bin/sh
# Generate at build time, from the source tree, what both packages ship besides the
# Python code: bash and zsh completion (`kbootd completion`, shtab) and the man page
# (help2man from `kbootd --help`, plus packaging/kbootd.h2m).
#   sh packaging/generate.sh OUTDIR VERSION [PYTHON]
# Run from the top of the source tree; needs PYTHON (default python3) with shtab,
# and help2man.
set -eu
out=$1 version=$2 python=${3:-python3}
src=$(pwd)
[ -f "$src/kbootd/__main__.py" ] || { echo "generate.sh: run me from the source tree" >&2; exit 1; }
mkdir -p "$out"
# The command from the source tree: no installed kbootd is needed (or used).
cat > "$out/kbootd" <<SCRIPT
#!/bin/sh
PYTHONPATH='$src' LC_ALL=C.UTF-8 COLUMNS=80 exec '$python' -m kbootd "\$@"
SCRIPT
chmod 0755 "$out/kbootd"
"$out/kbootd" completion bash > "$out/kbootd.bash"
"$out/kbootd" completion zsh > "$out/_kbootd"
grep -q '^#compdef kbootd' "$out/_kbootd"
help2man --no-info --no-discard-stderr --section=1 \
  --name="bootstrap Kubernetes nodes: kubeadm init and join, as a CLI and a systemd daemon" \
  --version-string="$version" --include="$src/packaging/kbootd.h2m" \
  --output="$out/kbootd.1" "$out/kbootd"
rm "$out/kbootd"
