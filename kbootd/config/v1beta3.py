"""kubeadm.k8s.io/v1beta3, read as kubeadm 1.32 reads it: converted to v1beta4 before parsing.

kubeadm's conversion (apis/kubeadm/v1beta3/conversion.go): extraArgs maps become name/value lists
sorted by name then value; discovery.timeout becomes timeouts.discovery; a non-zero
apiServer.timeoutForControlPlane becomes the InitConfiguration's
timeouts.controlPlaneComponentHealthCheck; imagePullSerial is true; encryptionAlgorithm and the
validity periods take their defaults. Fields that only v1beta4 has are unknown here.
"""

from __future__ import annotations

from typing import Any

from kbootd.config import v1beta4
from kbootd.config.yamlsrc import Doc
from kbootd.errors import ValidationError

API = "kubeadm.k8s.io/v1beta3"
KINDS = ("InitConfiguration", "ClusterConfiguration", "JoinConfiguration")
# Where v1beta4 added fields: v1beta3 documents that use them are as wrong as any unknown field.
V1BETA4_ONLY: dict[tuple[str, ...], tuple[str, ...]] = {
    ("InitConfiguration",): ("timeouts", "dryRun"),
    ("JoinConfiguration",): ("timeouts", "dryRun"),
    ("ClusterConfiguration",): ("encryptionAlgorithm", "caCertificateValidityPeriod",
                                "certificateValidityPeriod", "proxy", "etcdUpgrade"),
    ("ClusterConfiguration", "dns"): ("disabled",),
    ("ClusterConfiguration", "apiServer"): ("extraEnvs",),
    ("ClusterConfiguration", "controllerManager"): ("extraEnvs",),
    ("ClusterConfiguration", "scheduler"): ("extraEnvs",),
    ("ClusterConfiguration", "etcd", "local"): ("extraEnvs",),
    ("nodeRegistration",): ("imagePullSerial",),
}


def deprecation_warning(path: str, kind: str) -> str:
    """kubeadm's wording (validateSupportedVersion), naming kbootd's command."""
    return (f"{path}: your configuration file uses a deprecated API spec: \"{API}\" (kind: \"{kind}\"). "
            f"Please use 'kbootd config migrate --old-config old.yaml --new-config new.yaml', which will "
            f"write the new, similar spec using a newer API version.")


def convert(doc: Doc) -> str | None:
    """Rewrite doc.data in place into its v1beta4 form. Returns the raw timeoutForControlPlane of
    a ClusterConfiguration (it belongs to the InitConfiguration in v1beta4), else None."""
    data = doc.data
    kind = str(data.get("kind"))
    _refuse_v1beta4_fields(doc, data, (kind,))
    if isinstance(data.get("nodeRegistration"), dict):
        nr = data["nodeRegistration"]
        _refuse_v1beta4_fields(doc, nr, ("nodeRegistration",), ("nodeRegistration",))
        _args_to_list(doc, nr, "kubeletExtraArgs", ("nodeRegistration", "kubeletExtraArgs"))
    timeout = None
    if kind == "ClusterConfiguration":
        for comp in ("apiServer", "controllerManager", "scheduler"):
            if isinstance(data.get(comp), dict):
                _refuse_v1beta4_fields(doc, data[comp], (kind, comp), (comp,))
                _args_to_list(doc, data[comp], "extraArgs", (comp, "extraArgs"))
        api = data.get("apiServer")
        if isinstance(api, dict) and "timeoutForControlPlane" in api:
            timeout = api.pop("timeoutForControlPlane")
        if isinstance(data.get("dns"), dict):
            _refuse_v1beta4_fields(doc, data["dns"], (kind, "dns"), ("dns",))
        etcd = data.get("etcd")
        if isinstance(etcd, dict) and isinstance(etcd.get("local"), dict):
            _refuse_v1beta4_fields(doc, etcd["local"], (kind, "etcd", "local"), ("etcd", "local"))
            _args_to_list(doc, etcd["local"], "extraArgs", ("etcd", "local", "extraArgs"))
    if kind == "JoinConfiguration":
        disc = data.get("discovery")
        if isinstance(disc, dict) and "timeout" in disc:
            t = disc.pop("timeout")
            if t not in (None, "", 0):
                data["timeouts"] = {"discovery": t}
    data["apiVersion"] = v1beta4.API
    return None if timeout in (None, "", 0, "0s") else str(timeout)


def _refuse_v1beta4_fields(doc: Doc, data: dict[str, Any], key: tuple[str, ...],
                           path: tuple[str, ...] = ()) -> None:
    for name in V1BETA4_ONLY.get(key, ()):
        if name in data:
            where = f"{doc.source}:{doc.line(path + (name,))}"
            raise ValidationError(f"{where}: {'.'.join(path + (name,))}: unknown field {name!r} in {API} "
                                  f"(it is new in {v1beta4.API}; run `kbootd config migrate`)")


def _args_to_list(doc: Doc, parent: dict[str, Any], key: str, path: tuple[str, ...]) -> None:
    raw = parent.get(key)
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise ValidationError(f"{doc.source}:{doc.line(path)}: {'.'.join(path)}: expected a mapping of "
                              f"flag names to values in {API}, got {type(raw).__name__}")
    args = []
    for k, val in raw.items():
        if isinstance(val, (dict, list)) or val is None:
            raise ValidationError(f"{doc.source}:{doc.line(path + (k,))}: {'.'.join(path)}.{k}: "
                                  "expected a string value")
        args.append({"name": str(k), "value": _scalar(val)})
    parent[key] = sorted(args, key=lambda a: (a["name"], a["value"]))


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
