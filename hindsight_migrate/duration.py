"""A duration as a setting is written (``5s``, ``500ms``, ``2min``, ``1h``), read once, typed from then on.

Plain: no SQLAlchemy. A bare number is milliseconds, as PostgreSQL reads ``lock_timeout``. The text
is kept for messages (people see what they wrote); what is sent to PostgreSQL is the whole number of
milliseconds, so no text from a settings file is ever pasted into SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|min|h)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Duration:
    text: str  # as written: shown in messages
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Duration | None:
        """The duration ``text`` says, or None when it is not one."""
        found = _DURATION.fullmatch(text.strip())
        if found is None:
            return None
        return cls(text.strip(), float(found.group(1)) * _UNIT_SECONDS[found.group(2) or "ms"])

    @classmethod
    def of(cls, text: str) -> Duration:
        """A duration known to be valid (a default, a constant): a ValueError otherwise."""
        parsed = cls.parse(text)
        if parsed is None:
            raise ValueError(f"not a duration: {text!r}")
        return parsed

    @property
    def milliseconds(self) -> int:
        """For SET lock_timeout = … and the like: PostgreSQL reads a bare number as milliseconds."""
        return round(self.seconds * 1000)

    def __str__(self) -> str:
        return self.text


# The defaults of the settings that are durations, as written in the README.
A_TENTH_OF_A_SECOND = Duration.of("100ms")
A_SECOND = Duration.of("1s")
FIVE_SECONDS = Duration.of("5s")
TEN_SECONDS = Duration.of("10s")
A_MINUTE = Duration.of("60s")
FIVE_MINUTES = Duration.of("5min")
