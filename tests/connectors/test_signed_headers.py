"""``tests.factories.signed_headers`` signs as each platform does: every connector accepts its headers.

Other tests build inbound requests with it, so a wrong signature here would fail them for the wrong
reason; a tampered body must still be refused.
"""

from __future__ import annotations

import pytest

from connectors import REGISTRY
from connectors.base import RawRequest, SignatureError
from hub.delivery.signing import new_secret
from tests.factories import signed_headers

BODY = b'{"event": "order.created", "data": {"id": 1}}'
#: Standard Webhooks sources take a ``whsec_`` secret; the others any string the platform issued.
SECRETS = {"generic": new_secret(), "chat_agent": new_secret()}


def _request(source: str, body: bytes, secret: str) -> RawRequest:
    headers = {k.lower(): v for k, v in signed_headers(source, BODY, secret).items()}
    query = {"token": secret} if source == "zid" else {}  # Zid's token rides in the inbound URL
    return RawRequest(body=body, headers=headers, query=query)


@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_every_connector_accepts_the_factory_signature(source: str) -> None:
    secret = SECRETS.get(source, f"{source}-secret-0123456789")
    REGISTRY[source].verify(_request(source, BODY, secret), secret)


@pytest.mark.parametrize("source", sorted(set(REGISTRY) - {"zid"}))  # Zid signs no body, only the token
def test_a_tampered_body_is_still_refused(source: str) -> None:
    secret = SECRETS.get(source, f"{source}-secret-0123456789")
    with pytest.raises(SignatureError):
        REGISTRY[source].verify(_request(source, BODY + b" ", secret), secret)
