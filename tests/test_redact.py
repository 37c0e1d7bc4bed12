import io
import logging

from kbootd import redact
from kbootd.token import BootstrapToken


def test_registered_secret_removed_from_text():
    redact.register("hunter2-long-secret")
    assert redact.redact("pw=hunter2-long-secret!") == f"pw={redact.REDACTED}!"


def test_short_values_are_not_registered():
    redact.register("abc")
    assert "abc" not in redact.registered()
    assert redact.redact("abc") == "abc"


def test_unregistered_token_shapes_are_masked_keeping_the_id():
    assert redact.redact("join with q1w2e3.r4t5y6u7i8o9p0a1") == f"join with q1w2e3.{redact.REDACTED}"


def test_logging_filter_redacts_messages_args_and_tracebacks():
    tok = BootstrapToken.parse("logtst.abcdefghij012345")
    stream = io.StringIO()
    logger = logging.getLogger("kbootd-test-redact")
    logger.propagate = False
    h = logging.StreamHandler(stream)
    logger.addHandler(h)
    redact.install_filter(logger)
    logger.warning("token %s", tok.full)
    try:
        raise RuntimeError(f"failed with {tok.full}")
    except RuntimeError:
        logger.exception("boom")
    out = stream.getvalue()
    assert "abcdefghij012345" not in out
    assert "logtst." in out
    assert "RuntimeError" in out
    logger.removeHandler(h)
