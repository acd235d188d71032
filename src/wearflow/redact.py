"""Credentials out of everything wearflow records or prints: the one place that masks them.

A study file may hold credentials: the state database's password (``state:``, in the URL's
user part or its ``?password=``), a webhook's user and password, its path (a chat
service's webhook is a token) and its query (``?token=``, ``?sig=``), and the storage
options (fsspec keys and secrets); an SMTP password is read from the environment. None of
them is written to the state database, the audit trail, a log, an output or a message:

    redact_url(url)        user:***@ and ?token=***: its credentials masked, the rest kept
    url_host(url)          scheme://host:port/...: all a webhook's URL may show
    redact_text(text)      every URL in a free text masked as redact_url does
    redact_config(value)   a configuration (JSON-ready) masked: URLs, webhooks, storage options
    redact_json(text)      a JSON text masked; the same text when it holds no credential
    scrub(text, secrets)   known secret values (a password read from the environment) masked

Masking keeps what identifies a location (scheme, user name, host, port, database, the
other query parameters): a URL that holds no credential is left exactly as written, so the
study fingerprint of a study without credentials is what it was before masking existed.
A user name alone (``postgresql://wearflow@db/trial``) is not a credential; a webhook's
is, as everything of it but its scheme and host.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"

# ``scheme://user:password@``: the user part has no ``:``, ``/`` or ``@``; the password runs
# to the last ``@`` before a blank or a quote (an unencoded ``@`` in a password included)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s\"'<>]*):[^\s\"'<>]*@")
# query (or fragment) parameters that are credentials by their name
_CREDENTIAL_NAME = (r"[^=&#?\s\"'<>]*(?:password|passwd|pwd|secret|token|signature|credential"
                    r"|api[-_]?key)[^=&#?\s\"'<>]*"
                    r"|(?:[^=&#?\s\"'<>]*[-_.])?(?:key|pass|code|sig|auth|authorization)")
# its value runs to the next parameter, a blank or a quote (a colon before a blank ends a
# message's subject: ``https://h/x?token=t: refused``)
_QUERY_CREDENTIAL = re.compile(rf"([?&;#](?:{_CREDENTIAL_NAME}))=[^&#\s\"'<>]*?"
                               r"(?=[&#\s\"'<>]|:\s|:$|$)", re.IGNORECASE)
# configuration keys that name a credential (in storage options: key, secret, token, ...)
_CREDENTIAL_KEY = re.compile(rf"^(?:{_CREDENTIAL_NAME}|connection_string)$", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with the password of its user part and the values of its credential query
    parameters masked (``postgresql+psycopg://wf:***@db/trial?password=***``); a URL
    without credentials, or a text that is not a URL, comes back unchanged."""
    return redact_text(url)


def redact_text(text: str) -> str:
    """``text`` (an error message, a log line) with every URL in it masked as
    :func:`redact_url` masks one."""
    if "://" not in text and "=" not in text:
        return text
    return _QUERY_CREDENTIAL.sub(rf"\1={MASK}", _USERINFO.sub(rf"\1:{MASK}@", text))


def url_host(url: str) -> str:
    """``https://hooks.example.org/...``: a URL's scheme and host (and port) only. Its user
    and password, path, query and fragment are cut: any of them may be a credential (a
    webhook's token is often its path)."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    host = parts.hostname or "?"
    return f"{parts.scheme or '?'}://{host}{port}/..."


def _is_webhook(key: str) -> bool:
    return key == "webhook" or key.endswith(".webhook")  # also a diff's ``alerts.webhook``


def is_credential_key(name: str) -> bool:
    """Whether a configuration key names a credential (``secret``, ``key``, ``token``,
    ``password``, ...), as the storage options' keys are masked."""
    return bool(_CREDENTIAL_KEY.match(name))


def redact_config(value: Any, key: str = "") -> Any:
    """A JSON-ready configuration (a study's dump, a stored one, a diff of two) with every
    credential masked: URLs as :func:`redact_url` masks them, a webhook (under a key
    ``webhook``) cut to :func:`url_host`, and under ``storage_options`` every value whose
    key names a credential (``key``, ``secret``, ``token``, ...) replaced by ``***``."""
    return _walk(value, key, in_storage=key.startswith("storage_options"))


def _walk(value: Any, key: str, *, in_storage: bool) -> Any:
    if isinstance(value, dict):
        return {k: MASK if in_storage and _CREDENTIAL_KEY.match(str(k)) else
                _walk(v, key if _is_webhook(key) else str(k),
                      in_storage=in_storage or str(k).startswith("storage_options"))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, key, in_storage=in_storage) for v in value]
    if isinstance(value, str):
        return url_host(value) if _is_webhook(key) and "://" in value else redact_text(value)
    return value


def redact_json(text: str) -> str:
    """A JSON text (an audit entry's before or after) with :func:`redact_config` applied;
    the text itself, byte for byte, when nothing in it is a credential."""
    if "://" not in text and "=" not in text and "storage_options" not in text:
        return text  # the most entries: no URL, nothing to parse
    try:
        value = json.loads(text)
    except ValueError:
        return redact_text(text)
    masked = redact_config(value)
    if masked == value:
        return text
    return json.dumps(masked, sort_keys=True, ensure_ascii=False)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every (non-empty) secret in it replaced by ``***``, the longest first."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be credentials: itself, its password, and its path,
    query and fragment (as written and decoded). Its user name is not one (and, short,
    would cut words out of a message)."""
    parts = urlsplit(url)
    found = [url, parts.password, parts.query, parts.fragment]
    if parts.path not in ("", "/"):
        found.append(parts.path)
    return [s for s in {*found, *(unquote(s) for s in found if s)} if s]
