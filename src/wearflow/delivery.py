"""Telling people: a message POSTed as JSON to a webhook, or sent by e-mail (SMTP).

One small protocol, :class:`Target`, and its implementations: :class:`WebhookTarget`
(``urllib.request``), :class:`EmailTarget` (``smtplib``) and :class:`MemoryTarget`, an
in-process fake for tests. ``send`` either delivers or raises :class:`DeliveryError`
with a one-line reason; it never retries (the caller decides when to try again).

No credential leaves this module: a webhook URL is only ever shown as its
:func:`~wearflow.redact.url_host` (scheme and host; its user, password, path and
query may be tokens), credentials in the URL are sent as a Basic ``Authorization``
header, the SMTP password is read by the caller from the environment variable the study
file names, and error texts are scrubbed of every part of the URL and of the password.
"""

from __future__ import annotations

import base64
import http.client
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from wearflow.config_sections import EmailConfig
from wearflow.errors import DeliveryError, one_line
from wearflow.redact import scrub, url_host, url_secrets

TIMEOUT_S = 10.0  # per connection (and per read) to a webhook or an SMTP server


@dataclass(frozen=True)
class Message:
    """What to tell: an e-mail's subject and text, and the webhook's JSON object."""

    subject: str
    text: str
    payload: Mapping[str, Any]


class Target(Protocol):
    """Where messages go. ``name`` is what the alerts table records (never a URL)."""

    name: str

    def describe(self) -> str:
        """The target in words, with no credential in them."""
        ...

    def send(self, message: Message) -> None:
        """Deliver ``message`` once, or raise :class:`DeliveryError`."""
        ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other, never followed: urllib would send the
    message again, as a GET, with its ``Authorization`` header, to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirects)


def post_json(url: str, payload: Mapping[str, Any], *, timeout_s: float = TIMEOUT_S) -> None:
    """POST ``payload`` as JSON (sorted keys); any 2xx answer is delivered. A redirect is
    refused (not delivered), never followed.

    Raises
    ------
    DeliveryError
        Not delivered: no connection, a timeout, a redirect or another answer than 2xx.
        Its message and subject hold no part of the URL but its scheme and host.
    """
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", "User-Agent": "wearflow"}
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (
            f":{parts.port}" if parts.port else "")
        url_sent = urlunsplit(parts._replace(netloc=netloc))
    else:
        url_sent = url
    body = json.dumps(dict(payload), sort_keys=True).encode()
    request = urllib.request.Request(url_sent, data=body, method="POST", headers=headers)
    where = url_host(url)
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        refused = " (a redirect, refused: give the final URL)" if 300 <= exc.code < 400 else ""
        raise DeliveryError(f"HTTP {exc.code} {one_line(scrub(str(exc.reason), url_secrets(url)))}"
                            f"{refused}", subject=where) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(one_line(scrub(f"{type(exc).__name__}: {reason}", url_secrets(url))),
                            subject=where) from None
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}", subject=where)


class WebhookTarget:
    """POSTs each message's JSON to one URL."""

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self._url, self._timeout_s = url, timeout_s

    def describe(self) -> str:
        return f"webhook {url_host(self._url)}"

    def send(self, message: Message) -> None:
        post_json(self._url, message.payload, timeout_s=self._timeout_s)


class EmailTarget:
    """Mails each message's subject and text to the configured recipients.

    ``password``: the SMTP password (from the environment variable ``password_env``
    names), None when there is none.
    """

    name = "email"

    def __init__(self, config: EmailConfig, password: str | None, *,
                 timeout_s: float = TIMEOUT_S) -> None:
        self._config, self._password, self._timeout_s = config, password, timeout_s

    def describe(self) -> str:
        c = self._config
        return (f"e-mail via {c.smtp_host}:{c.smtp_port} to "
                f"{len(c.to)} recipient{'' if len(c.to) == 1 else 's'}")

    def send(self, message: Message) -> None:
        c = self._config
        if c.username and not self._password:
            raise DeliveryError(f"no SMTP password: the environment variable "
                                f"{c.password_env} is not set", subject=self.describe())
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = c.sender
        mail["To"] = ", ".join(c.to)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid(domain="wearflow.invalid")
        mail.set_content(message.text)
        try:
            with smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=self._timeout_s) as smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.username and self._password:
                    smtp.login(c.username, self._password)
                smtp.send_message(mail)
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            raise DeliveryError(one_line(scrub(f"{type(exc).__name__}: {exc}", [self._password])),
                                subject=self.describe()) from None


@dataclass
class MemoryTarget:
    """An in-process target for tests: keeps what it is sent; refuses the first
    ``fail_first`` tries."""

    name: str = "memory"
    fail_first: int = 0
    sent: list[Message] = field(default_factory=list)
    tries: int = 0

    def describe(self) -> str:
        return f"in-memory target {self.name}"

    def send(self, message: Message) -> None:
        self.tries += 1
        if self.tries <= self.fail_first:
            raise DeliveryError("refused (as the test asked)", subject=self.describe())
        self.sent.append(message)
