"""Tests against one `completer server` (vLLM's own server with completer's classes) shared by the
package's modules: its API key (known to the tests only) and how long a start may take."""

import secrets

KEY = secrets.token_hex(16)
SERVER_READY_S = 900
