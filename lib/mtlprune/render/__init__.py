"""Layer 4 — the book and the command line: tables, plots (the house style), glue, method cards, notebook parameters,
the papermill → jupyter-book pipeline, the browser check, `python -m mtlprune`. Nothing imports it."""
