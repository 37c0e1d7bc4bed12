"""`token list`, `token create`, `token delete`: the logic, returning data and text for the CLI.

Formats follow kubeadm: the list table (one tabwriter per row, fixed-width padding),
`<forever>`/`<never>` for tokens without expiration, `<invalid>` TTL for expired ones,
-o json|yaml as output.kubeadm.k8s.io/v1alpha3 BootstrapToken documents, and the
`--print-join-command` line with its trailing space.

The full token appears only in what these functions return for the operator (the
list's TOKEN column, the created token, the join command), never in a message.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kbootd import apiclient, kyaml
from kbootd.cluster import admin_client
from kbootd.cluster.bootstraptoken import (
    GENERATED_LABEL,
    NAMESPACE,
    SECRET_TYPE,
    decode_secret,
    expiration,
    secret_data,
    token_secret,
)
from kbootd.config.model import BootstrapTokenSpec
from kbootd.errors import KbootdError, ValidationError
from kbootd.pin import pin_of
from kbootd.pki.certs import load_cert_chain_pem
from kbootd.token import (
    DEFAULT_GROUPS,
    DEFAULT_TTL_SECONDS,
    DEFAULT_USAGES,
    TOKEN_ID_PATTERN,
    BootstrapToken,
    parse_token_id,
    validate_groups,
    validate_usages,
)

OUTPUT_API = "output.kubeadm.k8s.io/v1alpha3"
_TOKEN_ID = re.compile(TOKEN_ID_PATTERN)
COLUMNS = ("TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS")


@dataclass(frozen=True)
class TokenInfo:
    token: BootstrapToken
    expires: datetime | None
    expires_text: str | None
    usages: tuple[str, ...]
    groups: tuple[str, ...]
    description: str


# --- reading ---------------------------------------------------------------------------------

def _parse_time(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def token_from_secret(secret: dict[str, Any]) -> TokenInfo:
    """kubeadm's BootstrapTokenFromSecret; raises KbootdError for a malformed Secret."""
    name = (secret.get("metadata") or {}).get("name", "")
    d = decode_secret(secret)
    tid, tsecret = d.get("token-id", ""), d.get("token-secret", "")
    if not _TOKEN_ID.match(tid):
        raise KbootdError(f"bootstrap token Secret {name!r} has no valid token-id")
    if name != f"bootstrap-token-{tid}":
        raise KbootdError(f"bootstrap token Secret {name!r} is not named bootstrap-token-<token-id>")
    try:
        token = BootstrapToken.parse(f"{tid}.{tsecret}", source=f"Secret {name}")
    except ValidationError:
        raise KbootdError(f"bootstrap token Secret {name!r} has no valid token-secret") from None
    exp_text = d.get("expiration") or None
    exp = _parse_time(exp_text) if exp_text else None
    if exp_text and exp is None:
        raise KbootdError(f"bootstrap token Secret {name!r} has an invalid expiration {exp_text!r}")
    usages = tuple(sorted(k[len("usage-bootstrap-"):] for k, v in d.items()
                          if k.startswith("usage-bootstrap-") and v == "true"))
    groups = tuple(g for g in d.get("auth-extra-groups", "").split(",") if g)
    return TokenInfo(token, exp, exp_text, usages, groups, d.get("description", ""))


def list_tokens(client: apiclient.Client, warn: Callable[[str], None] | None = None) -> list[TokenInfo]:
    secrets = client.retry(lambda: client.list("Secret", NAMESPACE, field_selector=f"type={SECRET_TYPE}"),
                           "list bootstrap tokens")
    out = []
    for s in secrets:
        if s.get("type", SECRET_TYPE) != SECRET_TYPE:
            continue  # a server that ignored the field selector
        try:
            out.append(token_from_secret(s))
        except KbootdError as e:
            if warn:
                warn(str(e))
    return out


# --- init's tokens ---------------------------------------------------------------------------

def resolve_init_tokens(ctx: Any) -> list[tuple[BootstrapTokenSpec, BootstrapToken]]:
    """Each configured token; the first spec without one reuses a still-valid token that an
    earlier init generated for it (a re-run mints no second token), else gets a new one."""
    out = []
    for i, spec in enumerate(ctx.cfg.bootstrap_tokens):
        tok = spec.token
        if tok is None:
            tok = (generated_earlier(ctx, spec) if i == 0 else None) or BootstrapToken.generate()
        out.append((spec, tok))
    return out


def generated_earlier(ctx: Any, spec: BootstrapTokenSpec) -> BootstrapToken | None:
    """The unexpired token with the spec's usages and groups that init generated, newest first."""
    if ctx.dry_run:
        return None
    client = admin_client(ctx)
    key, value = GENERATED_LABEL
    secrets = client.retry(lambda: client.list("Secret", NAMESPACE, label_selector=f"{key}={value}"),
                           "list bootstrap tokens generated by init")
    now = ctx.seams.now()
    found = []
    for s in secrets:
        if s.get("type") != SECRET_TYPE or ((s.get("metadata") or {}).get("labels") or {}).get(key) != value:
            continue  # a server that ignored the selector
        try:
            info = token_from_secret(s)
        except KbootdError:
            continue
        if ((info.expires is None or info.expires > now) and info.usages == tuple(sorted(spec.usages))
                and info.groups == tuple(spec.groups)):
            found.append(info)
    found.sort(key=lambda i: i.expires or datetime.max.replace(tzinfo=timezone.utc), reverse=True)
    return found[0].token if found else None


# --- formatting ------------------------------------------------------------------------------

def short_human_duration(seconds: float) -> str:
    """apimachinery's duration.ShortHumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    hours = s // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def ttl_text(info: TokenInfo, now: datetime) -> str:
    return "<forever>" if info.expires is None else short_human_duration((info.expires - now).total_seconds())


def _row(info: TokenInfo, now: datetime) -> list[str]:
    expires = "<never>" if info.expires is None else info.expires.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [info.token.full, f"{ttl_text(info, now):<9}", expires, f"{','.join(info.usages) or '<none>':<22}",
            f"{info.description or '<none>':<56}", ",".join(info.groups) or "<none>"]


def _tabwrite(lines: list[list[str]]) -> str:
    """Go's tabwriter(minwidth 10, padding 3, ' '): every cell but the last padded to its column."""
    widths = [max(10, *(len(r[i]) + 3 for r in lines)) for i in range(len(lines[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + r[-1] + "\n" for r in lines)


def format_table(tokens: list[TokenInfo], now: datetime | None = None) -> str:
    """kubeadm flushes its tabwriter after each token: the header aligns with the first row only."""
    now = now or datetime.now(timezone.utc)
    out = []
    for i, info in enumerate(tokens):
        lines = ([list(COLUMNS)] if i == 0 else []) + [_row(info, now)]
        out.append(_tabwrite(lines))
    return "".join(out)


def output_doc(info: TokenInfo) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": OUTPUT_API, "kind": "BootstrapToken", "token": info.token.full}
    if info.description:
        doc["description"] = info.description
    if info.expires_text:
        doc["expires"] = info.expires_text
    if info.usages:
        doc["usages"] = list(info.usages)
    if info.groups:
        doc["groups"] = list(info.groups)
    return doc


def format_output(tokens: list[TokenInfo], output: str = "text", now: datetime | None = None) -> str:
    if output == "text":
        return format_table(tokens, now)
    if output == "json":
        return "".join(json.dumps(output_doc(t), indent=4) + "\n" for t in tokens)
    if output == "yaml":
        return "---\n".join(kyaml.dump(output_doc(t)) for t in tokens)
    raise ValidationError(f"--output: unknown format {output!r}; expected text, json or yaml")


# --- creating and deleting -----------------------------------------------------------------------

def create_token(client: apiclient.Client, token: BootstrapToken | None = None, *,
                 ttl: float = DEFAULT_TTL_SECONDS, usages: tuple[str, ...] | list[str] = DEFAULT_USAGES,
                 groups: tuple[str, ...] | list[str] = DEFAULT_GROUPS, description: str = "",
                 now: datetime | None = None) -> BootstrapToken:
    """Create a new token Secret; an existing token with the same id is an error (kubeadm's rule)."""
    usages = validate_usages(list(usages), source="--usages")
    groups = validate_groups(list(groups), source="--groups")
    if groups and "authentication" not in usages:
        raise ValidationError('--groups: extra groups are only valid with the "authentication" usage')
    if ttl < 0:
        raise ValidationError("--ttl: must not be negative")
    token = token or BootstrapToken.generate()
    now = now or datetime.now(timezone.utc)
    secret = token_secret(token, secret_data(token, expires=expiration(None, ttl, now), usages=usages,
                                             groups=groups, description=description))

    tried = False

    def attempt() -> None:
        nonlocal tried
        retrying, tried = tried, True
        try:
            client.create(secret)
        except apiclient.APIError as e:
            # A retry after a lost answer finds the Secret our first attempt created: that is success.
            if e.already_exists and not (retrying and _holds_secret(client, token)):
                raise KbootdError(f"a token with id {token.id!r} already exists") from None
            if not e.already_exists:
                raise

    client.retry(attempt, f"create bootstrap token {token.id}")
    return token


def _holds_secret(client: apiclient.Client, token: BootstrapToken) -> bool:
    """True when the live Secret for token.id is this very token (same secret)."""
    live = client.get("Secret", token.secret_name, NAMESPACE)
    have = decode_secret(live).get("token-secret", "") if live else ""
    return hmac.compare_digest(have.encode(), token.secret.encode())


def delete_tokens(client: apiclient.Client, ids_or_tokens: list[str]) -> list[str]:
    """Delete by id or whole token (only the id is used). Returns kubeadm's line per token."""
    ids = [parse_token_id(t, source="token delete") for t in ids_or_tokens]
    if not ids:
        raise ValidationError("token delete: give at least one token id or token")
    lines = []
    for tid in ids:
        tried = False

        def attempt(tid: str = tid) -> bool:
            nonlocal tried
            retrying, tried = tried, True
            # A retry that finds nothing: the attempt whose answer was lost deleted it.
            # In dry-run nothing exists to delete; kubeadm's dry-run client reports success.
            return client.delete("Secret", f"bootstrap-token-{tid}", NAMESPACE) or retrying or client.dry_run

        if not client.retry(attempt, f"delete bootstrap token {tid}"):
            raise KbootdError(f'bootstrap token "{tid}" not found in {NAMESPACE}')
        lines.append(f'bootstrap token "{tid}" deleted')
    return lines


def ca_pins(ca_pem: bytes) -> list[str]:
    """The public-key pin of each certificate in a CA bundle (one flag each, as kubeadm prints)."""

    return [pin_of(c) for c in load_cert_chain_pem(ca_pem, "the kubeconfig's certificate-authority-data")]


def join_command(kc: apiclient.KubeConfig, token: BootstrapToken, program: str = "kbootd") -> str:
    """The worker join command as `token create --print-join-command` prints it (trailing space)."""
    if not kc.ca_pem:
        raise KbootdError(f"{kc.path}: no certificate-authority data to pin for the join command")
    pins = "".join(f"--discovery-token-ca-cert-hash {p} " for p in ca_pins(kc.ca_pem))
    return f"{program} join {kc.endpoint} --token {token.full} {pins}"


# --- what the CLI calls ------------------------------------------------------------------------

def _done(ctx: Any, client: apiclient.Client) -> None:
    if client is not ctx.data.api_client:  # a shared client stays open for its owner
        client.close()


def run_list(ctx: Any, kubeconfig: str | None = None, output: str = "text",
             now: datetime | None = None) -> str:
    client = apiclient.client_for(ctx, kubeconfig)
    try:
        tokens = list_tokens(client, warn=lambda m: ctx.reporter.warn("token", m))
    finally:
        _done(ctx, client)
    return format_output(tokens, output, now)


def run_create(ctx: Any, kubeconfig: str | None = None, token_text: str | None = None, *,
               ttl: float = DEFAULT_TTL_SECONDS, usages: tuple[str, ...] | list[str] = DEFAULT_USAGES,
               groups: tuple[str, ...] | list[str] = DEFAULT_GROUPS, description: str = "",
               print_join_command: bool = False, program: str = "kbootd") -> str:
    """The line to print: the new token, or the join command. Ends in a newline."""
    token = BootstrapToken.parse(token_text, source="token create") if token_text else None
    kc = apiclient.load_kubeconfig(ctx, kubeconfig or ctx.paths.admin_conf) if print_join_command else None
    client = apiclient.client_for(ctx, kubeconfig)
    try:
        token = create_token(client, token, ttl=ttl, usages=usages, groups=groups, description=description)
    finally:
        _done(ctx, client)
    return (join_command(kc, token, program) if kc else token.full) + "\n"


def run_delete(ctx: Any, kubeconfig: str | None, ids_or_tokens: list[str]) -> str:
    client = apiclient.client_for(ctx, kubeconfig)
    try:
        return "".join(line + "\n" for line in delete_tokens(client, ids_or_tokens))
    finally:
        _done(ctx, client)
