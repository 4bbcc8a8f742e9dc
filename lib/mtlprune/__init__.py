"""mtlprune: pruning for multi-task and multi-domain networks, as a reproducible study.

The package owns all computation, file layout and caching; notebooks only declare configs and call it.
"""

__version__ = "0.1.0"
