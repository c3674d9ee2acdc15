"""Tests for hub.delivery.signing (Standard Webhooks outbound signing)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from hub.delivery import signing

# The reference vector used across the Standard Webhooks / Svix libraries' own test suites.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# Non-ASCII on purpose (an Arabic customer name), so any text/bytes mix-up changes the signature.
BODY = '{"id":"evt_1","type":"order.created","data":{"order":{"id":"ord_1","customer_name":"سارة"}}}'.encode()


def test_known_answer_from_the_spec() -> None:
    got = signing.sign(msg_id=SPEC_MSG_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_BODY, secrets=[SPEC_SECRET])
    assert got == SPEC_SIGNATURE


def test_new_secret_shape_and_randomness() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first.startswith("whsec_")
    assert first != second
    key = base64.b64decode(first.removeprefix("whsec_"), validate=True)
    assert 24 <= len(key) <= 32
    assert signing.decode_secret(first) == key


def test_rotated_secrets_each_verify_with_the_reference_library() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    now = int(time.time())
    hdrs = signing.headers(msg_id="evt_01HXYZ", timestamp=now, body=BODY, secrets=[new, old])
    entries = hdrs["webhook-signature"].split(" ")
    assert len(entries) == 2
    assert all(entry.startswith("v1,") for entry in entries)
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, hdrs) is not None
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, hdrs)


def test_headers_shape() -> None:
    secret = signing.new_secret()
    hdrs = signing.headers(msg_id="evt_1", timestamp=1700000000, body=b"{}", secrets=[secret])
    assert hdrs == {
        "webhook-id": "evt_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": signing.sign(msg_id="evt_1", timestamp=1700000000, body=b"{}", secrets=[secret]),
        "content-type": "application/json",
    }


def test_signature_matches_hand_rolled_hmac_over_raw_bytes() -> None:
    # Cross-check the library path (which signs text) against HMAC over the exact bytes we send,
    # with a non-ASCII body so a decode/encode mismatch would show.
    secret = signing.new_secret()
    key = signing.decode_secret(secret)
    mac = hmac.new(key, b"evt_9.1700000000." + BODY, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    assert signing.sign(msg_id="evt_9", timestamp=1700000000, body=BODY, secrets=[secret]) == expected


def test_signature_depends_on_id_timestamp_and_body() -> None:
    secret = signing.new_secret()
    base = signing.sign(msg_id="evt_1", timestamp=1, body=b"{}", secrets=[secret])
    assert signing.sign(msg_id="evt_2", timestamp=1, body=b"{}", secrets=[secret]) != base
    assert signing.sign(msg_id="evt_1", timestamp=2, body=b"{}", secrets=[secret]) != base
    assert signing.sign(msg_id="evt_1", timestamp=1, body=b"{ }", secrets=[secret]) != base


def test_duplicate_secret_signs_once() -> None:
    secret = signing.new_secret()
    got = signing.sign(msg_id="evt_1", timestamp=1, body=b"{}", secrets=[secret, secret])
    assert " " not in got


def test_unpadded_secret_is_accepted() -> None:
    padded = "whsec_" + base64.b64encode(b"k" * 25).decode()
    assert padded.endswith("=")
    assert signing.decode_secret(padded.rstrip("=")) == b"k" * 25


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_",  # empty
        "whsec_not*base64!",  # junk the reference library would silently skip
        "whsec_" + base64.b64encode(b"short").decode(),  # under 24 bytes
        "whsec_" + base64.b64encode(b"x" * 65).decode(),  # over 64 bytes
    ],
)
def test_invalid_secrets_are_refused(secret: str) -> None:
    with pytest.raises(signing.InvalidSecretError):
        signing.sign(msg_id="evt_1", timestamp=1, body=b"{}", secrets=[secret])


def test_no_secrets_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        signing.sign(msg_id="evt_1", timestamp=1, body=b"{}", secrets=[])


@pytest.mark.parametrize("msg_id", ["", "evt 1", "evt_1\r\nx-injected: 1", "evt\t1"])
def test_bad_msg_ids_are_refused(msg_id: str) -> None:
    with pytest.raises(ValueError, match="msg_id"):
        signing.sign(msg_id=msg_id, timestamp=1, body=b"{}", secrets=[SPEC_SECRET])


@pytest.mark.parametrize("timestamp", [-1, True])
def test_bad_timestamps_are_refused(timestamp: int) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        signing.sign(msg_id="evt_1", timestamp=timestamp, body=b"{}", secrets=[SPEC_SECRET])


def test_non_utf8_body_is_refused() -> None:
    with pytest.raises(UnicodeDecodeError):
        signing.sign(msg_id="evt_1", timestamp=1, body=b"\xff\xfe", secrets=[SPEC_SECRET])
