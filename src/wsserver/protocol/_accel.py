"""The optional C accelerator (``_speedups.c``), or ``None``.

``None`` when it was not built (no compiler at install time) or when the
environment sets ``WSSERVER_NO_SPEEDUPS=1``; every user has an exact
pure-Python path, which CI runs too.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["speedups"]

speedups: ModuleType | None = None
if os.environ.get("WSSERVER_NO_SPEEDUPS", "") in ("", "0"):
    try:
        from . import _speedups as speedups
    except ImportError:
        speedups = None
