"""The study's own error types: each message names the file or value at fault and the fix."""

from __future__ import annotations


class CacheError(RuntimeError):
    """A cached artefact (checkpoint, summary, dense run) is unreadable or unusable."""


class GridError(RuntimeError):
    """Some runs of a grid failed; the message lists each with its error (the others are in the run store)."""


class DataError(RuntimeError):
    """Missing or malformed dataset; the message names the file and the fix."""
