"""The study's own error types: each message names the file or value at fault and the fix."""

from __future__ import annotations


class CacheError(RuntimeError):
    """A cached artefact (checkpoint, summary, dense run) is unreadable or unusable."""
