import pytest

from kbootd.duration import format_duration, parse_duration
from kbootd.errors import ValidationError


@pytest.mark.parametrize("text,seconds", [
    ("24h", 86400), ("24h0m0s", 86400), ("15m", 900), ("90s", 90), ("1h30m", 5400),
    ("0", 0), ("0s", 0), ("300", 300), (300, 300), ("1.5h", 5400), ("500ms", 0.5),
    ("87600h0m0s", 87600 * 3600),
])
def test_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "h", "10x", "1h-5m", "-5m", "abc", True, "1h 5m"])
def test_parse_rejects(bad):
    with pytest.raises(ValidationError, match="--token-ttl"):
        parse_duration(bad, what="--token-ttl")


@pytest.mark.parametrize("seconds,text", [
    (86400, "24h0m0s"), (0, "0s"), (300, "5m0s"), (59, "59s"), (3661, "1h1m1s"), (87600 * 3600, "87600h0m0s"),
])
def test_format_like_go(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
