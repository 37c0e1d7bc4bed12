"""Detached JWS signatures on the cluster-info ConfigMap, as Kubernetes' bootstrap signer makes them.

The controller-manager's bootstrapsigner writes `data.jws-kubeconfig-<token id>` next to
`data.kubeconfig` in kube-public/cluster-info. The value is a compact JWS with the payload left
out (RFC 7515 appendix F): `<b64url(header)>..<b64url(signature)>`, where the header is exactly
`{"alg":"HS256","kid":"<token id>"}` and the signature is HMAC-SHA256, keyed with the token
*secret* only, over `<b64url(header)>.<b64url(kubeconfig)>`.

Only the standard library is used, so that `join` can verify discovery without heavy imports.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

ALGORITHM = "HS256"


def _b64url(data: bytes) -> str:
    # JWS uses base64url without padding (RFC 7515 section 2).
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encoded_header(token_id: str) -> str:
    """The protected header, serialized the way the bootstrap signer (go-jose) does: compact, alg first."""
    header = json.dumps({"alg": ALGORITHM, "kid": token_id}, separators=(",", ":"))
    return _b64url(header.encode("utf-8"))


def sign(content: str, token_id: str, token_secret: str) -> str:
    """The detached JWS of `content` (the kubeconfig string exactly as served) for one token."""
    header = encoded_header(token_id)
    signing_input = f"{header}.{_b64url(content.encode('utf-8'))}".encode("ascii")
    mac = hmac.new(token_secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return f"{header}..{_b64url(mac)}"


def verify(content: str, jws: str, token_id: str, token_secret: str) -> bool:
    """True only if `jws` is the detached HS256 signature of `content` by this token.

    Anything else is rejected: a different header (another kid, `alg: none`, extra fields, another
    encoding of the same JSON), an attached payload, a malformed value or a wrong signature.
    """
    if not all(isinstance(v, str) for v in (content, jws, token_id, token_secret)):
        return False
    if not all(_is_utf8(v) for v in (content, jws)):
        # A lone surrogate (JSON's \ud800 decodes to one) is no text the signer could have
        # signed: a bad signature (exit 4), not a UnicodeEncodeError (exit 1).
        return False
    parts = jws.split(".")
    if len(parts) != 3 or parts[1] != "":
        return False  # not the detached compact form
    if not hmac.compare_digest(parts[0].encode("ascii", "replace"), encoded_header(token_id).encode("ascii")):
        return False
    expected = sign(content, token_id, token_secret)
    # Compare the whole value in constant time: the signature is the secret-derived part.
    return hmac.compare_digest(jws.encode("utf-8"), expected.encode("utf-8"))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
