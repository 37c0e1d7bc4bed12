"""The validity dates of a PEM certificate, read straight from its DER (no `cryptography`).

The supervisor checks every certificate's expiry each pass and must stay lean (it never
imports `cryptography`), so it reads only what it needs: TBSCertificate.validity
(RFC 5280 4.1: SEQUENCE { version [0] EXPLICIT OPTIONAL, serialNumber, signature,
issuer, validity SEQUENCE { notBefore Time, notAfter Time }, ... }), where Time is a
UTCTime (YYMMDDHHMMSSZ, years 1950-2049) or a GeneralizedTime (YYYYMMDDHHMMSSZ).
tests/test_pki_expiry.py checks it against `cryptography` on real certificates.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone

from kbootd.errors import ValidationError

_BEGIN, _END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"


def first_der(pem: bytes, where: str) -> bytes:
    """The DER bytes of the first certificate of a PEM file."""
    start = pem.find(_BEGIN)
    end = pem.find(_END, start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        raise ValidationError(f"{where}: not a PEM certificate (expected {_BEGIN.decode()})")
    body = b"".join(pem[start + len(_BEGIN):end].split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{where}: the PEM certificate is not valid base64") from None


def _tlv(der: bytes, pos: int, where: str) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the element at pos."""
    try:
        tag = der[pos]
        length = der[pos + 1]
        pos += 2
        if length & 0x80:
            n = length & 0x7F
            if n == 0 or n > 4:
                raise IndexError
            length = int.from_bytes(der[pos:pos + n], "big")
            pos += n
        if pos + length > len(der):
            raise IndexError
    except IndexError:
        raise ValidationError(f"{where}: the certificate's DER encoding is truncated or malformed") from None
    return tag, pos, pos + length


def _time(der: bytes, pos: int, where: str) -> tuple[datetime, int]:
    tag, start, end = _tlv(der, pos, where)
    text = der[start:end].decode("ascii", errors="replace")
    try:
        if tag == 0x17:  # UTCTime
            year = int(text[:2])
            text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
        elif tag != 0x18:  # GeneralizedTime
            raise ValueError
        when = datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValidationError(f"{where}: the certificate's validity dates cannot be read") from None
    return when, end


def validity(pem: bytes, where: str) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of the first certificate in a PEM file, in UTC."""
    der = first_der(pem, where)
    _, cert, _ = _tlv(der, 0, where)  # Certificate
    _, pos, _ = _tlv(der, cert, where)  # TBSCertificate content
    if der[pos] == 0xA0:  # [0] version
        pos = _tlv(der, pos, where)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        pos = _tlv(der, pos, where)[2]
    tag, pos, _ = _tlv(der, pos, where)  # validity
    if tag != 0x30:
        raise ValidationError(f"{where}: the certificate's validity dates cannot be read")
    not_before, pos = _time(der, pos, where)
    not_after, _ = _time(der, pos, where)
    return not_before, not_after


def not_after(pem: bytes, where: str) -> datetime:
    return validity(pem, where)[1]
