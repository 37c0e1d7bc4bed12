"""`init phase control-plane` and `init phase etcd`: write the static Pod manifests the kubelet runs.

Each writer builds the Pod, renders it and hands it to ctx.host, which writes atomically,
leaves an unchanged file alone (re-running is a no-op) and only prints in dry-run.
"""

from __future__ import annotations

from collections.abc import Callable

from kbootd.manifests import controlplane, etcd, pod

# kubeadm writes manifests readable by root only: they may carry proxy credentials.
MANIFEST_MODE = 0o600
MANIFEST_DIR_MODE = 0o700
ETCD_DATA_DIR_MODE = 0o700


def _write(ctx, component: str, build: Callable[..., pod.Pod]) -> bool:
    content = pod.to_yaml(build(ctx))
    return ctx.host.write_file(ctx.paths.manifest(component), content, MANIFEST_MODE)


def control_plane(ctx) -> None:
    """Parent phase: announce the manifest folder the children write into."""
    ctx.host.ensure_dir(ctx.paths.manifests_dir, MANIFEST_DIR_MODE)
    ctx.reporter.info("control-plane", f'Using manifest folder "{ctx.paths.manifests_dir}"')


def _component(ctx, component: str) -> None:
    ctx.reporter.info("control-plane", f'Creating static Pod manifest for "{component}"')
    _write(ctx, component, controlplane.BUILDERS[component])


def apiserver(ctx) -> None:
    _component(ctx, controlplane.KUBE_APISERVER)


def controller_manager(ctx) -> None:
    _component(ctx, controlplane.KUBE_CONTROLLER_MANAGER)


def scheduler(ctx) -> None:
    _component(ctx, controlplane.KUBE_SCHEDULER)


def skip_if_external_etcd(ctx) -> str | None:
    """run_if for the etcd phase: nothing to run locally when etcd is external."""
    return "external etcd" if ctx.cfg.cluster.etcd_external is not None else None


def etcd_local(ctx) -> None:
    local = ctx.cfg.cluster.etcd_local
    if local is None:  # run_if normally skips us; a direct call must not write a bogus Pod
        ctx.reporter.info("etcd", "External etcd mode: skipping the local etcd manifest")
        return
    # Private like kubeadm makes it (etcd warns otherwise); created before the kubelet would
    # create it 0755 for the hostPath volume.
    ctx.host.ensure_dir(local.data_dir, ETCD_DATA_DIR_MODE)
    ctx.host.ensure_dir(ctx.paths.manifests_dir, MANIFEST_DIR_MODE)
    ctx.reporter.info("etcd", f'Creating static Pod manifest for local etcd in "{ctx.paths.manifests_dir}"')
    _write(ctx, etcd.ETCD, etcd.etcd_pod)
