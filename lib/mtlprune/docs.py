"""A method's own documentation (its module docstring: paper, hyperparameters, deviations) for its chapter."""

from __future__ import annotations




def method_card(method: str):
    """The method's own documentation (paper, hyperparameters, deviations) as Markdown for the chapter."""
    import inspect

    from IPython.display import Markdown

    from .pruning import STRATEGIES

    cls = STRATEGIES.get(method)
    module_doc = inspect.getdoc(inspect.getmodule(cls)) or ""
    return Markdown(f"**Method `{method}`** (`{cls.__module__}`)\n\n{module_doc}")
