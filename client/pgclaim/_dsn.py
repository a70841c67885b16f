"""DSNs shown without their passwords: ``redact`` for a DSN, ``scrub`` for a message.

libpq takes two DSN forms, and a password can sit in three places:

* URL user info: ``postgresql://user:secret@host/db``;
* a URL query parameter: ``postgresql://host/db?password=secret``;
* a ``key=value`` setting: ``host=h password=secret`` or ``password='a b'``.

``sslpassword`` (the passphrase of an SSL key) is treated like ``password``. Every DSN the
package prints or logs goes through ``redact``; texts that may echo part of a DSN (libpq's
parse errors do) go through ``scrub``. ``check`` refuses, before any connection is tried, a
DSN libpq could only answer with an error that repeats part of it.
"""
from __future__ import annotations

import re
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .errors import InvalidArgument

#: what a password is replaced with
MASK = "***"
#: the settings whose values are secrets (libpq's names; compared case-insensitively)
SECRET_KEYS = frozenset({"password", "sslpassword"})
#: secrets shorter than this are not searched for in free text: such strings occur in any
#: message, and masking them there would garble it without hiding anything
MIN_SCRUB_LENGTH = 3

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Where a URL's query string starts: "?" then "key=" (a "?" inside a password is seldom
# followed by a key and "=", and a password libpq reads otherwise is masked by its value).
_QUERY = re.compile(r"\?[A-Za-z_%][A-Za-z0-9_%]*=")
# A key=value DSN libpq cannot parse: mask what follows a password key up to the end of its
# quoted or bare value (the rest of the text when a quote is never closed).
_LOOSE_SECRET = re.compile(
    r"(\b(?:ssl)?password\b\s*=?\s*)('(?:[^'\\]|\\.)*(?:'|$)|(?:[^\s\\]|\\.)+)",
    re.IGNORECASE | re.DOTALL,
)


def _is_secret(key: str) -> bool:
    return unquote(key).strip().lower() in SECRET_KEYS


def _redact_url(dsn: str) -> tuple[str, list[str]]:
    """The URL with its passwords masked, and the password texts as written."""
    head = _URL.match(dsn)
    assert head is not None
    start = head.end()
    query = _QUERY.search(dsn, start)
    end = query.start() if query else len(dsn)
    secrets: list[str] = []
    out = dsn[:start]
    # User info ends at the last "@" before the query: libpq stops at the first "@" or "/",
    # but a password typed with an unencoded "@" or "/" must not show either.
    at = dsn.rfind("@", start, end)
    if at >= 0:
        userinfo = dsn[start:at]
        user, colon, password = userinfo.partition(":")
        if colon:
            secrets.append(password)
            userinfo = f"{user}:{MASK}"
        out += userinfo + dsn[at:end]
    else:
        out += dsn[start:end]
    if query:
        params = []
        for param in dsn[query.start() + 1:].split("&"):
            key, eq, value = param.partition("=")
            if eq and _is_secret(key):
                secrets.append(value)
                param = f"{key}={MASK}"
            params.append(param)
        out += dsn[query.start()] + "&".join(params)
    return out, secrets


def _redact_keywords(dsn: str) -> tuple[str, list[str]] | None:
    """The ``key=value`` DSN with its passwords masked (libpq's quoting rules), and the
    password values; ``None`` when libpq could not parse it."""
    out: list[str] = []
    secrets: list[str] = []
    i, n = 0, len(dsn)
    while i < n:
        j = i
        while j < n and dsn[j].isspace():
            j += 1
        if j == n:
            out.append(dsn[i:])
            break
        k = j
        while k < n and dsn[k] != "=" and not dsn[k].isspace():
            k += 1
        key = dsn[j:k]
        while k < n and dsn[k].isspace():
            k += 1
        if k == n or dsn[k] != "=" or not key:
            return None
        k += 1
        while k < n and dsn[k].isspace():
            k += 1
        v = k
        value: list[str] = []
        if k < n and dsn[k] == "'":
            k += 1
            while k < n and dsn[k] != "'":
                if dsn[k] == "\\" and k + 1 < n:
                    k += 1
                value.append(dsn[k])
                k += 1
            if k == n:
                return None  # unterminated quoted string
            k += 1
        else:
            while k < n and not dsn[k].isspace():
                if dsn[k] == "\\" and k + 1 < n:
                    k += 1
                value.append(dsn[k])
                k += 1
        out.append(dsn[i:v])
        if key.lower() in SECRET_KEYS:
            secrets.extend(["".join(value), dsn[v:k]])
            out.append(MASK)
        else:
            out.append(dsn[v:k])
        i = k
    return "".join(out), secrets


def _parse(dsn: str) -> tuple[str, list[str]]:
    if _URL.match(dsn):
        return _redact_url(dsn)
    parsed = _redact_keywords(dsn)
    if parsed is not None:
        return parsed
    secrets = [m.group(2) for m in _LOOSE_SECRET.finditer(dsn)]
    return _LOOSE_SECRET.sub(lambda m: m.group(1) + MASK, dsn), secrets


def redact(dsn: str) -> str:
    """``dsn`` with every password replaced by ``***``, whatever its form.

    ``postgresql://u:secret@h/db`` gives ``postgresql://u:***@h/db``; ``?password=secret``
    gives ``?password=***``; ``host=h password='a b'`` gives ``host=h password=***``. A DSN
    libpq could not parse is masked generously: everything that may be a password goes.
    """
    shown, secrets = _parse(dsn)
    seen = {unquote(s) for s in secrets} | set(secrets)
    # A password libpq reads where the rules above saw none (an odd URL): mask its text too.
    return _mask(shown, secrets_of(dsn) - seen, MIN_SCRUB_LENGTH)


def secrets_of(dsn: str) -> set[str]:
    """The password texts of ``dsn``: as written, percent-decoded, and as libpq reads them."""
    found: set[str] = set()
    for secret in _parse(dsn)[1]:
        found.update((secret, unquote(secret), secret.strip("'")))
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        params = {}
    for key, value in params.items():
        if key.lower() in SECRET_KEYS and value is not None:
            found.add(str(value))
    return {s for s in found if s}


def _mask(text: str, secrets: set[str] | list[str], min_length: int) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= min_length and MASK not in secret:
            text = text.replace(secret, MASK)
    return text


def scrub(text: str, *dsns: str) -> str:
    """``text`` (an error message, say) with the passwords of ``dsns`` masked wherever they
    appear, and any of those DSNs written out in full replaced by its redacted form."""
    for dsn in dsns:
        if dsn and dsn in text:
            text = text.replace(dsn, redact(dsn))
    for dsn in dsns:
        text = _mask(text, secrets_of(dsn), MIN_SCRUB_LENGTH)
    return text


def check(dsn: str) -> None:
    """Raises ``InvalidArgument`` for a DSN that libpq cannot parse, or whose port is not a
    number, with the DSN redacted: libpq's own messages for these repeat part of the DSN,
    which could be a password typed with a character a URL must escape."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        reason = scrub(str(exc).strip().splitlines()[0], dsn) if str(exc).strip() else ""
        raise InvalidArgument(
            f"pgclaim: cannot parse the database DSN {redact(dsn)}"
            + (f": {reason}" if reason else "")) from None
    port = params.get("port")
    if port is not None and not all(p.strip().isdigit() for p in str(port).split(",")
                                    if p.strip()):
        raise InvalidArgument(
            f"pgclaim: the port of the database DSN {redact(dsn)} is not a number")


__all__ = ["MASK", "SECRET_KEYS", "check", "redact", "scrub", "secrets_of"]
