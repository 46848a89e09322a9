"""Keep passwords out of everything the tool shows, logs or stores.

Works on plain text, not on parsed URLs, so that it also covers a URL too malformed to
parse and database error messages that quote a connection string.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

# scheme://user:PASSWORD@host — the password may contain anything but '@' and whitespace;
# the last '@' before the host wins, as in libpq.
# A password may even hold spaces in a malformed URL: masking too much is the safe side.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\n]*:)(?P<secret>[^\n]*?)@(?=[^@\n]*$|[^@\n]*\s)")
# key=value forms: libpq conninfo (password=...) and URL query strings (?password=...)
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|sslpassword)\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&;]+)",
    re.IGNORECASE,
)


# Passwords of the URLs this process was given, masked wherever they appear, whatever the text
# around them looks like (a URL too odd for the patterns above, a driver's message).
_KNOWN_SECRETS: set[str] = set()
_SCHEME_SPLIT = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://(?P<authority>.*)@", re.DOTALL)


def forget_secrets() -> None:
    """Start a command afresh (the tests run many commands in one process)."""
    _KNOWN_SECRETS.clear()


def remember_secret_of(url: str) -> None:
    """Remember the password part of ``url`` (everything between the user's ':' and the last '@')."""
    match = _SCHEME_SPLIT.match(url)
    if match is None:
        return
    _, colon, secret = match.group("authority").partition(":")
    # Very short ones would mask ordinary letters everywhere; the patterns still cover them in URLs.
    if colon and len(secret) >= 3:
        _KNOWN_SECRETS.add(secret)
        # A URL-encoded password shows decoded in some messages; both are secrets.
        _KNOWN_SECRETS.add(unquote(secret))


def mask_secrets(text: str) -> str:
    """Return ``text`` with every password in a URL or ``password=`` pair replaced by ***."""
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)

    def url_repl(match: re.Match[str]) -> str:
        secret = match.group("secret")
        # "user:@host" has an empty password; leave it as it is.
        return f"{match.group('head')}{MASK if secret else ''}@"

    masked = _URL_PASSWORD.sub(url_repl, text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}", masked)
