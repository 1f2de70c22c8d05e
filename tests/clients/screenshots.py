"""Where the client tests save their screenshots.

A test run leaves the tracked pictures alone: they go to a temporary folder, unless
COMPLETER_REFRESH_SCREENSHOTS=1 asks for docs/screenshots/ (the pictures the README shows).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REFRESH_ENV = "COMPLETER_REFRESH_SCREENSHOTS"
TRACKED = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot_path(name: str) -> Path:
    """``docs/screenshots/<name>`` when COMPLETER_REFRESH_SCREENSHOTS=1, else ``<tmp>/completer-screenshots/<name>``."""
    if os.environ.get(REFRESH_ENV) == "1":
        return TRACKED / name
    return Path(tempfile.gettempdir()) / "completer-screenshots" / name
