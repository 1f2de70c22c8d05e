"""Engines behind one interface (interface.py); ``start_engine`` builds the one the settings ask for."""

from __future__ import annotations

from completer.engine.interface import Capabilities, Engine, EngineError
from completer.engine.models import ProgressFn, _noop

__all__ = ["Capabilities", "Engine", "EngineError", "start_engine"]


def start_engine(settings, progress: ProgressFn = _noop) -> Engine:
    """Start the engine for ``settings`` (blocking: run it in a thread): a running vLLM server's when
    ``engine_url`` is set (remote.py), else in-process vLLM.

    Raises models.ModelError, memory.DoesNotFit or EngineError when it cannot start."""
    if settings.engine_url:
        from completer.engine.remote import RemoteEngine

        return RemoteEngine.connect(settings, progress)
    from completer.engine.vllm_engine import VllmEngine

    return VllmEngine.build(settings, progress)
