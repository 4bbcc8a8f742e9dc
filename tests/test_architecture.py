"""The library's shape: no import cycles among module-level imports, no method names in the training loops, and the
catalogue as the one list of methods."""

from __future__ import annotations

import ast
from pathlib import Path

from mtlprune import catalogue, paths

LIB = paths.REPO_ROOT / "lib"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, name: str) -> set[str]:
    """Modules of this package imported at module level (imports inside functions are deliberate late imports)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mtlprune"):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names)  # `from . import x` imports module x
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("mtlprune"))
    return out


def test_no_import_cycles():
    files = {_module_name(p): p for p in (LIB / "mtlprune").rglob("*.py")}
    graph = {m: {t for t in _top_level_imports(p, m) if t in files and t != m} for m, p in files.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in graph[m]:
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert len(graph) > 40


def test_training_loops_name_no_method():
    keys = set(catalogue.keys()) | {m.key for m in catalogue.MULTI_DOMAIN}
    for loop in ("train.py", "mdl/train.py", "runner.py", "mdl/runner.py", "store.py", "execute.py"):
        source = (LIB / "mtlprune" / loop).read_text()
        named = {k for k in keys if f'"{k}"' in source or f"'{k}'" in source}
        assert not named, f"{loop} names methods {sorted(named)}: use the hooks"


def test_the_fused_heads_compute_what_each_head_computes():
    """`fused_aspp` (every head in 9 convolutions) against each head's own forward: the same outputs and gradients up
    to float rounding."""
    import torch

    from mtlprune.models import build_model
    from mtlprune.models.heads import fused_aspp, fusable
    from mtlprune.profiles import make_config

    cfg = make_config("quick")
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.tasks)
    heads = list(model.heads.values())
    assert fusable(heads)
    x = torch.randn(4, model.backbone.out_channels, 6, 8)
    fused = fused_aspp(heads, x)
    sum(o.sum() for o in fused).backward()
    fused_grads = [p.grad.clone() for h in heads for p in h.parameters()]
    model.zero_grad()
    separate = [h(x) for h in heads]
    sum(o.sum() for o in separate).backward()
    for a, b in zip(fused, separate):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    for a, b in zip(fused_grads, [p.grad for h in heads for p in h.parameters()]):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_the_model_training_and_evidence_name_no_task():
    """Tasks plug in through their specs (`tasks`): the model, the loop, the losses' dispatch and the evidence read
    the registered specs, never a task's name."""
    names = ("seg", "depth", "normal")
    for module in ("train.py", "models/multitask.py", "evidence.py", "findings.py", "runner.py"):
        source = (LIB / "mtlprune" / module).read_text()
        named = {n for n in names if f'"{n}"' in source or f"'{n}'" in source}
        assert not named, f"{module} names tasks {sorted(named)}: read them from their task specs"
