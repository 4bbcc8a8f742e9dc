"""Method cards: a method's own documentation (its module docstring: paper, hyperparameters, deviations) as Markdown
for its chapter, for the pruning methods and the multi-domain methods alike."""

from __future__ import annotations

import inspect

from IPython.display import Markdown

from ..core.mdl import methods, model, sharing
from ..core.pruning import STRATEGIES


def method_card(method: str) -> Markdown:
    """The pruning method's own documentation (paper, hyperparameters, deviations) as Markdown for the chapter."""
    cls = STRATEGIES.get(method)
    module_doc = inspect.getdoc(inspect.getmodule(cls)) or ""
    return Markdown(f"**Method `{method}`** (`{cls.__module__}`)\n\n{module_doc}")


def mdl_card() -> Markdown:
    """The multi-domain methods', sharing terms' and model's own documentation, as Markdown for the chapter."""
    return Markdown("\n\n".join(inspect.getdoc(m) or "" for m in (methods, sharing, model)))
