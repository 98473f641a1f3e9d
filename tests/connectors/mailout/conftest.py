"""moto's SES on 127.0.0.1 for the mail tests, with the hub's sending addresses verified."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from local.embedded import REGION, EmbeddedAws

SENDERS = ("renkei@hub.example.jp", "approve@hub.example.jp")


@pytest.fixture(scope="module")
def ses() -> Iterator[Any]:
    with EmbeddedAws() as aws:
        client = aws.client("ses")
        for address in SENDERS:
            client.verify_email_identity(EmailAddress=address)
        yield client


def sent_mails() -> list[Any]:
    """What moto's SES accepted, oldest first (the server runs in this process)."""
    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)
