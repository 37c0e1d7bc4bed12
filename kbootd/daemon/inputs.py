"""Where the daemon's settings come from, read in order of precedence (later wins).

1. built-in defaults (kbootd.daemon.document.DEFAULTS)
2. /etc/kbootd/kbootd.yaml, then /etc/kbootd/kbootd.d/*.yaml in name order: kbootd documents
3. the top-level `kbootd:` key of cloud-init user-data, from
   /run/cloud-init/combined-cloud-config.json (cloud-init 23.3+) or else
   /var/lib/cloud/instance/cloud-config.txt (22.x); both are root-only
4. datasource metadata named kbootd-role, kbootd-token, kbootd-endpoint,
   kbootd-ca-cert-hash, from /run/cloud-init/instance-data-sensitive.json (root-only)

The world-readable /run/cloud-init/instance-data.json is never read: on some clouds it
holds the same metadata with secrets redacted, and reading the token there would be wrong
either way. This module only reads and locates; kbootd.daemon.document validates and merges.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from kbootd.config.yamlsrc import MAX_INPUT_BYTES, load_documents, load_one
from kbootd.errors import KbootdError, ValidationError
from kbootd.hostio import Host
from kbootd.token import holds_token

# metadata key -> document field; underscores too, for platforms whose keys cannot hold "-".
METADATA_KEYS = {
    "kbootd-role": "role",
    "kbootd-token": "token",
    "kbootd-endpoint": "endpoint",
    "kbootd-ca-cert-hash": "caCertHash",
}


@dataclass
class Source:
    """One place that gave settings: its name for logs, its fields, and where each came from."""

    name: str
    path: str
    data: dict[str, Any]
    where: dict[str, str] = field(default_factory=dict)
    header: bool = False  # a whole kbootd document file: apiVersion and kind are required
    holds_secret: bool = False
    mode: int | None = None
    uid: int | None = None

    def at(self, key: str) -> str:
        return self.where.get(key, f"{self.name}: {key}")


@dataclass
class Gathered:
    sources: list[Source]
    looked: list[str]  # every place looked, with what was found, for "not found" errors

    def looked_text(self) -> str:
        return "; ".join(self.looked)


def _stat(host: Host, path: str) -> tuple[int | None, int | None]:
    try:
        st = os.stat(host.paths.at(path))
    except OSError:
        return None, None
    return st.st_mode & 0o7777, st.st_uid


def _read(host: Host, path: str) -> str | None:
    data = host.read_bytes(path, limit=MAX_INPUT_BYTES)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{path}: not UTF-8 text") from None


def _document_file(host: Host, path: str) -> Source | None:
    text = _read(host, path)
    if text is None:
        return None
    docs = load_documents(text, path)
    if not docs:
        return Source(path, path, {}, header=False)
    if len(docs) > 1:
        raise ValidationError(f"{path}: expected one kbootd document, found {len(docs)}")
    doc = docs[0]
    if not isinstance(doc.data, dict):
        raise ValidationError(f"{path}:{doc.line(())}: expected a mapping with apiVersion: "
                              "kbootd.io/v1alpha1 and kind: KbootdConfiguration")
    where = {k: f"{path}:{doc.line((k,))}: {k}" for k in doc.data}
    mode, uid = _stat(host, path)
    return Source(path, path, dict(doc.data), where, header=True,
                  holds_secret=holds_token(text) or "certificateKey" in text, mode=mode, uid=uid)


def _user_data(host: Host, gathered: Gathered) -> None:
    """The `kbootd:` key of the merged cloud-config; combined-cloud-config.json is the newer, fuller file."""
    p = host.paths
    for path, kind in ((p.cloudinit_combined, "json"), (p.cloudinit_cloud_config, "yaml")):
        text = _read(host, path)
        if text is None:
            gathered.looked.append(f"user-data `kbootd:` key in {path} (absent)")
            continue
        try:
            if kind == "json":
                cfg = json.loads(text)
            else:

                cfg = load_one(text, path)
        except ValidationError as e:
            raise ValidationError(f"{e.message} (cannot parse cloud-init's merged cloud-config)") from None
        except Exception as e:  # json's ValueError or RecursionError (their text quotes no value)
            raise ValidationError(f"{path}: cannot parse cloud-init's merged cloud-config: {e}") from None
        value = cfg.get("kbootd") if isinstance(cfg, dict) else None
        if value is None:
            gathered.looked.append(f"user-data `kbootd:` key in {path} (no such key)")
        elif not isinstance(value, dict):
            raise ValidationError(f"{path}: kbootd: expected a mapping of kbootd settings "
                                  f"(role, token, endpoint, ...), got {type(value).__name__}")
        else:
            name = f"user-data `kbootd:` key ({path})"
            gathered.looked.append(f"user-data `kbootd:` key in {path} (found)")
            mode, uid = _stat(host, path)
            gathered.sources.append(Source(
                name, path, dict(value), {k: f"{path}: kbootd.{k}" for k in value},
                holds_secret=holds_token(json.dumps(value, default=str)) or "certificateKey" in json.dumps(value, default=str),
                mode=mode, uid=uid))
        return  # the first file present is authoritative: both hold the same user-data


def metadata_maps(ds: Any) -> list[tuple[str, dict[str, Any]]]:
    """Candidate key/value maps in instance data's `ds`, each with its path for messages."""
    out: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(ds, dict):
        return out
    for key in ("meta_data", "meta-data"):
        md = ds.get(key)
        if not isinstance(md, dict):
            continue
        base = "ds.meta_data" if key == "meta_data" else 'ds["meta-data"]'
        out.append((base, md))  # NoCloud meta-data, and any datasource that passes keys through
        if isinstance(md.get("meta"), dict):
            out.append((f"{base}.meta", md["meta"]))  # OpenStack instance properties
        tags = md.get("tags")
        if isinstance(tags, dict) and isinstance(tags.get("instance"), dict):
            out.append((f"{base}.tags.instance", tags["instance"]))  # EC2 tags in IMDS
        attrs = md.get("instance-data")  # GCE: instance attributes, as JSON text
        if isinstance(attrs, str):
            try:
                attrs = json.loads(attrs)
            except (ValueError, RecursionError):
                attrs = None
        if isinstance(attrs, dict):
            out.append((f'{base}["instance-data"]', attrs))
    return out


def _metadata(host: Host, gathered: Gathered) -> None:
    path = host.paths.cloudinit_sensitive
    text = _read(host, path)
    if text is None:
        gathered.looked.append(f"datasource metadata kbootd-* in {path} (absent)")
        return
    try:
        data = json.loads(text)
    except RecursionError:  # deeply nested instance data
        raise ValidationError(f"{path}: not valid JSON: nested too deeply") from None
    except ValueError as e:
        raise ValidationError(f"{path}: not valid JSON: {e}") from None
    found: dict[str, Any] = {}
    where: dict[str, str] = {}
    for base, md in metadata_maps(data.get("ds") if isinstance(data, dict) else None):
        for key, fld in METADATA_KEYS.items():
            for spelled in (key, key.replace("-", "_")):
                if fld not in found and spelled in md and md[spelled] not in (None, ""):
                    found[fld] = md[spelled]
                    where[fld] = f"{path}: {base}[{spelled!r}]"
    if not found:
        gathered.looked.append(f"datasource metadata kbootd-* in {path} (none)")
        return
    gathered.looked.append(f"datasource metadata kbootd-* in {path} (found)")
    mode, uid = _stat(host, path)
    gathered.sources.append(Source(f"datasource metadata ({path})", path, found, where,
                                   holds_secret="token" in found or "certificateKey" in found, mode=mode, uid=uid))


def gather(host: Host) -> Gathered:
    """Every source that exists, lowest precedence first."""
    p = host.paths
    g = Gathered([], [])
    try:
        src = _document_file(host, p.config_file)
        g.looked.append(f"{p.config_file} ({'found' if src else 'absent'})")
        if src:
            g.sources.append(src)
        names = [n for n in host.listdir(p.config_dir) if n.endswith(".yaml") and not n.startswith(".")]
        g.looked.append(f"{p.config_dropin_glob} ({len(names)} found)")
        for n in names:
            src = _document_file(host, f"{p.config_dir}/{n}")
            if src:
                g.sources.append(src)
        _user_data(host, g)
        _metadata(host, g)
    except ValidationError:
        raise
    except KbootdError as e:  # unreadable (not root), a directory where a file belongs, ...
        raise ValidationError(f"reading kbootd's settings: {e}") from None
    return g
