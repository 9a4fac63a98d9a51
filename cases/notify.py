"""Delivering notifications (催办 / 督办): a small Notifier interface and its implementations.

The scheduler decides what must be sent (rows in `notification`); a Notifier delivers one row at a
time. `LogNotifier` writes a log line without personal data, `MemoryNotifier` collects what it was given
(tests read `.sent`), `SmsNotifier` sends through an `SmsGateway` — the true external boundary, faked by
`FakeSmsGateway` in tests and demos. A notifier raising means "not delivered": the row stays unsent and
the next run retries it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("gridgov.notify")

# Long digit runs (phone numbers, ID numbers) never reach a log line.
_DIGITS = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?!\d)|\d{17}[\dXx]|\d{7,}")


def scrub(text: str) -> str:
    """Text with phone/ID-like digit runs masked (for logs)."""
    return _DIGITS.sub(lambda m: m.group(0)[:3] + "****", text or "")


class Notifier(Protocol):
    """Delivers one notification (a dict with id, case_id, case_no, kind, recipient, message, dedupe_key)."""

    def send(self, notification: dict) -> None:
        """Deliver or raise; returning means delivered."""


class LogNotifier:
    """Writes one log line per notification: kind, recipient code, case number; no personal data."""

    def __init__(self, logger: logging.Logger | None = None):
        self.log = logger or log

    def send(self, notification: dict) -> None:
        """Log the notification (message scrubbed of phone/ID numbers)."""
        self.log.info("notify %s → %s case %s: %s", notification.get("kind"), notification.get("recipient"),
                      notification.get("case_no") or notification.get("case_id"),
                      scrub(notification.get("message", "")))


class MemoryNotifier:
    """Keeps every delivered notification in `.sent` (tests assert on it); `fail_for` recipients raise."""

    def __init__(self, fail_for: set[str] | None = None):
        self.sent: list[dict] = []
        self.fail_for = set(fail_for or ())

    def send(self, notification: dict) -> None:
        """Record the notification, or raise for a recipient set to fail."""
        if notification.get("recipient") in self.fail_for:
            raise ConnectionError(f"delivery to {notification.get('recipient')} failed")
        self.sent.append(dict(notification))


class SmsGateway(Protocol):
    """An SMS vendor's API: send text to one phone number, return the vendor's message id."""

    def send_sms(self, phone: str, text: str) -> str:
        """Send or raise."""


class FakeSmsGateway:
    """In-memory SMS gateway for tests and demos: `.outbox` holds (phone, text) pairs."""

    def __init__(self, fail: bool = False):
        self.outbox: list[tuple[str, str]] = []
        self.fail = fail

    def send_sms(self, phone: str, text: str) -> str:
        """Record the message (or raise when told to fail)."""
        if self.fail:
            raise ConnectionError("SMS gateway unavailable")
        self.outbox.append((phone, text))
        return f"fake-{len(self.outbox)}"


class SmsNotifier:
    """Sends the message text by SMS to the recipient's phone, looked up by `phone_for(recipient code)`."""

    def __init__(self, gateway: SmsGateway, phone_for: Callable[[str], str | None], signature: str = "【网格化治理】"):
        self.gateway = gateway
        self.phone_for = phone_for
        self.signature = signature

    def send(self, notification: dict) -> None:
        """Send by SMS; a recipient without a phone is an error (the row stays unsent)."""
        phone = self.phone_for(notification["recipient"])
        if not phone:
            raise LookupError(f"no phone number for recipient {notification['recipient']}")
        self.gateway.send_sms(phone, self.signature + notification["message"])


def phone_directory(db) -> Callable[[str], str | None]:
    """A lookup recipient code → phone over staff (officers), departments and centers (queried per call)."""

    def lookup(code: str) -> str | None:
        row = db.fetchone(
            "SELECT phone FROM staff WHERE code = %(c)s AND active AND phone <> '' UNION ALL "
            "SELECT phone FROM department WHERE code = %(c)s AND phone <> '' UNION ALL "
            "SELECT phone FROM center WHERE code = %(c)s AND phone <> '' LIMIT 1", {"c": code})
        return row["phone"] if row else None

    return lookup
