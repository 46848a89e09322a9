"""Keep passwords out of everything the tool shows, logs or stores.

Works on plain text, not on parsed URLs, so that it also covers a URL too malformed to
parse and database error messages that quote a connection string.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:PASSWORD@host — the password may contain anything but '@' and whitespace;
# the last '@' before the host wins, as in libpq.
# A password may even hold spaces in a malformed URL: masking too much is the safe side.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^\n]*?)@(?=[^@\n]*$|[^@\n]*\s)")
# key=value forms: libpq conninfo (password=...) and URL query strings (?password=...)
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|sslpassword)\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&;]+)",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """Return ``text`` with every password in a URL or ``password=`` pair replaced by ***."""

    def url_repl(match: re.Match[str]) -> str:
        secret = match.group("secret")
        # "user:@host" has an empty password; leave it as it is.
        return f"{match.group('head')}{MASK if secret else ''}@"

    masked = _URL_PASSWORD.sub(url_repl, text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}", masked)
