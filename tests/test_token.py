import re

import pytest

from kbootd import redact
from kbootd.errors import ValidationError
from kbootd.token import (
    TOKEN_ID_PATTERN,
    TOKEN_PATTERN,
    BootstrapToken,
    parse_token_id,
    validate_groups,
    validate_usages,
)


def test_generate_1000_tokens_match_format_and_are_distinct():
    toks = [BootstrapToken.generate() for _ in range(1000)]
    fulls = {t.full for t in toks}
    assert len(fulls) == 1000
    assert all(re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", f) for f in fulls)


def test_generated_characters_cover_the_alphabet():
    # A biased or truncated alphabet would show up over many draws.
    chars = set("".join(BootstrapToken.generate().secret for _ in range(400)))
    assert chars == set("0123456789abcdefghijklmnopqrstuvwxyz")


@pytest.mark.parametrize("text,tid,secret", [
    ("abcdef.0123456789abcdef", "abcdef", "0123456789abcdef"),
    ("  07401b.f395accd246ae52d\n", "07401b", "f395accd246ae52d"),
])
def test_parse(text, tid, secret):
    t = BootstrapToken.parse(text)
    assert (t.id, t.secret) == (tid, secret)
    assert t.full == f"{tid}.{secret}"
    assert t.secret_name == f"bootstrap-token-{tid}"


@pytest.mark.parametrize("bad", [
    "abcdef0123456789abcdef", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef",
    "abcdef.0123456789abcde", "abcdef.0123456789abcdeff", "abc_ef.0123456789abcdef", "",
])
def test_parse_rejects_malformed_and_never_echoes_the_secret(bad):
    with pytest.raises(ValidationError) as e:
        BootstrapToken.parse(bad, source="--token")
    msg = str(e.value)
    assert msg.startswith("--token:")
    if "." in bad:
        assert bad.split(".", 1)[1] not in redact.redact(msg)


def test_str_and_repr_hide_secret():
    t = BootstrapToken.parse("qwerty.secretsecret1234")
    assert "secretsecret1234" not in str(t)
    assert "secretsecret1234" not in repr(t)
    assert str(t).startswith("qwerty.")


def test_parse_registers_secret_for_redaction():
    t = BootstrapToken.parse("zzzzzz.mysecretvalue123")
    assert "mysecretvalue123" in redact.registered()
    assert "mysecretvalue123" not in redact.redact(f"the token is {t.full}")


@pytest.mark.parametrize("usages,ok", [
    (["signing"], True), (["signing", "authentication"], True), (["auth"], False), ([], True),
])
def test_usages(usages, ok):
    if ok:
        assert validate_usages(usages) == tuple(usages)
    else:
        with pytest.raises(ValidationError, match="unknown usage"):
            validate_usages(usages)


@pytest.mark.parametrize("group,ok", [
    ("system:bootstrappers:kubeadm:default-node-token", True),
    ("system:bootstrappers:worker-pool-1", True),
    ("system:bootstrappers:", False),
    ("system:nodes", False),
    ("system:bootstrappers:Upper", False),
    ("system:bootstrappers:trailing-", False),
])
def test_groups(group, ok):
    if ok:
        assert validate_groups([group]) == (group,)
    else:
        with pytest.raises(ValidationError, match="system:bootstrappers"):
            validate_groups([group])


@pytest.mark.parametrize("text,expected", [
    ("abcdef", "abcdef"), ("abcdef.0123456789abcdef", "abcdef"), ("abcdef.wrongsecret12345", "abcdef"),
])
def test_token_delete_uses_only_the_id(text, expected):
    assert parse_token_id(text) == expected


def test_token_regex_is_the_spec_regex():
    assert TOKEN_PATTERN == r"^([a-z0-9]{6})\.([a-z0-9]{16})$"


def test_the_token_shape_is_defined_once_in_kbootd_tokenshape():
    """No other module spells the token regex: they use kbootd.tokenshape's patterns."""
    from pathlib import Path

    import kbootd
    from kbootd import token

    pkg = Path(kbootd.__file__).parent
    spelled = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
               if p.name != "tokenshape.py" and ("{6}" in p.read_text() or "{16}" in p.read_text())]
    assert spelled == []
    assert token.holds_token("x abcdef.0123456789abcdef y") and not token.holds_token("abcdef.0123")


@pytest.mark.parametrize("bad", [
    "fz1abc:q9w8e7r6t5y4u3i2", "fz1abcq9w8e7r6t5y4u3i2", "FZ1ABC.q9w8e7r6t5y4u3i2x", "fz1ab.q9w8e7r6t5y4u3i2",
    "q9w8e7r6t5y4u3i2", " fz1abc-q9w8e7r6t5y4u3i2 ", "fz1abc.q9w8e7r6t5y4u3i2.extra",
])
def test_a_mistyped_token_is_never_echoed(bad):
    """Issue 11 #5: nothing of a token that does not parse, but a valid 6-character id."""
    with pytest.raises(ValidationError) as e:
        BootstrapToken.parse(bad, source="--token")
    msg = str(e.value)
    head, dot, rest = bad.strip().partition(".")
    shown_id = head if dot and re.fullmatch(TOKEN_ID_PATTERN, head) else None
    for i in range(len(bad.strip()) - 3):
        piece = bad.strip()[i:i + 4]
        if shown_id and piece in shown_id:
            continue
        assert piece not in msg, (piece, msg)
    assert msg.startswith("--token: ")
