"""The `email` channel: the rendered mail, sent raw with SES. Throttling and 5xx are worth a retry."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from connectors.mailout.render import render
from gateway.errors import PermanentError, RetryableError
from schemas.config import EmailTarget, Hub

_RETRYABLE = {"Throttling", "ThrottlingException", "ServiceUnavailable", "InternalFailure", "RequestTimeout"}


class MailChannel:
    def __init__(self, hub: Hub, target: EmailTarget, ses: Any, sender_address: str) -> None:
        self.hub = hub
        self.target = target
        self.ses = ses
        self.sender_address = sender_address

    def deliver(self, destination: str, bundle: dict[str, Any]) -> None:
        message = render(bundle, self.hub.name or self.hub.id, self.sender_address, self.target.to)
        try:
            self.ses.send_raw_email(
                Source=self.sender_address, Destinations=self.target.to, RawMessage={"Data": message.as_bytes()}
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _RETRYABLE or status >= 500:
                raise RetryableError(f"{destination}: SES {code}") from None
            raise PermanentError(f"{destination}: SES refused the mail ({code})") from None
        except BotoCoreError as exc:
            raise RetryableError(f"{destination}: SES unreachable ({type(exc).__name__})") from None
