"""Close status codes of RFC 6455 section 7.4."""

from __future__ import annotations

__all__ = [
    "NORMAL_CLOSURE",
    "GOING_AWAY",
    "PROTOCOL_ERROR",
    "UNSUPPORTED_DATA",
    "NO_STATUS_RECEIVED",
    "ABNORMAL_CLOSURE",
    "INVALID_PAYLOAD",
    "POLICY_VIOLATION",
    "MESSAGE_TOO_BIG",
    "MANDATORY_EXTENSION",
    "INTERNAL_ERROR",
    "is_valid_on_wire",
    "is_valid_to_send",
]

NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
NO_STATUS_RECEIVED = 1005  # never on the wire: no code was in the close frame
ABNORMAL_CLOSURE = 1006  # never on the wire: the TCP connection dropped
INVALID_PAYLOAD = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
MANDATORY_EXTENSION = 1010
INTERNAL_ERROR = 1011

# Codes defined by RFC 6455 or registered with IANA that may appear in a frame.
_REGISTERED_ON_WIRE = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def is_valid_on_wire(code: int) -> bool:
    """Whether ``code`` may appear in a received close frame."""
    return code in _REGISTERED_ON_WIRE or 3000 <= code <= 4999


def is_valid_to_send(code: int) -> bool:
    """Whether an application may close with ``code``.

    1010 is the client's code (missing extension), so a server never sends it.
    """
    return code != MANDATORY_EXTENSION and is_valid_on_wire(code)
