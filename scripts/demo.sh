#!/usr/bin/env bash
# The main job on an embedded default: `kbootd init` for a control plane into a sandbox
# root. With a root other than /, kbootd writes files there but runs nothing on this
# machine (service actions and commands are printed instead).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-/tmp/kbootd-demo}
rm -rf "$ROOT"
mkdir -p "$ROOT/etc"
echo demo-cp > "$ROOT/etc/hostname"
CONFIG=$(mktemp --suffix=.yaml)
trap 'rm -f "$CONFIG"' EXIT
cat > "$CONFIG" <<'YAML'
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.0.0.10
nodeRegistration:
  name: demo-cp
  criSocket: unix:///run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.32.0
networking:
  podSubnet: 10.244.0.0/16
YAML
echo "== kbootd phase init (the phases of init)"
.venv/bin/kbootd phase init
echo
CLUSTER_PHASES=wait-control-plane,upload-config,mark-control-plane,bootstrap-token,addon
echo "== kbootd init --root $ROOT --config <embedded default>: this node's half, written for real"
# Preflight inspects the real machine, which is not the sandbox: its failures are reported, not fatal here.
.venv/bin/kbootd init --root "$ROOT" --config "$CONFIG" --ignore-preflight-errors=all \
  --skip-phases "$CLUSTER_PHASES"
echo
echo "== kbootd init --dry-run: the cluster half (no API server here), the objects it would create"
.venv/bin/kbootd init --root "$ROOT" --config "$CONFIG" --ignore-preflight-errors=all --dry-run \
  --skip-phases cri,preflight,certs,kubeconfig,etcd,control-plane,kubelet-start
echo
echo "== files written under $ROOT"
(cd "$ROOT" && find . -type f -printf '%m %p\n' | sort -k2)
