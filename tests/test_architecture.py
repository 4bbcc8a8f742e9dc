"""The library's shape: four layers visible as folders (core → runs → study → render), every import statement —
module-level or inside a function — pointing down the layers, no import cycle at all, one training loop that names no
method, and the catalogue as the one list of methods."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from mtlprune.core import catalogue, paths

LIB = paths.REPO_ROOT / "lib"
LAYERS = ("core", "runs", "study", "render")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[tuple[str, int]]:
    """(library module, line) of every import statement in the file, at any depth (functions included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mtlprune"):
                out.add((target, node.lineno))
                out.update((f"{target}.{a.name}", node.lineno) for a in node.names if f"{target}.{a.name}" in modules)
        elif isinstance(node, ast.Import):
            out.update((a.name, node.lineno) for a in node.names if a.name.startswith("mtlprune"))
    return {(t, line) for t, line in out if t in modules}


def _graph() -> dict[str, set[tuple[str, int]]]:
    files = {_module_name(p): p for p in (LIB / "mtlprune").rglob("*.py")}
    return {m: {(t, line) for t, line in _imports(p, m, set(files)) if t != m} for m, p in files.items()}


def _layer(module: str) -> int:
    """0 for the package root (only its version), 1..4 for the layers, 5 for the entry point `__main__`."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] == "__main__":
        return 5
    return LAYERS.index(parts[1]) + 1


def test_the_layers_are_folders_and_hold_every_module():
    graph = _graph()
    assert all((LIB / "mtlprune" / layer / "__init__.py").exists() for layer in LAYERS)
    loose = [m for m in graph if m.count(".") == 1 and m.split(".")[1] not in (*LAYERS, "__main__")]
    assert not loose, f"modules outside the layers: {loose}"
    assert len(graph) > 60


def test_every_import_points_down_the_layers():
    """Module-level and function-level imports alike: a module imports only from its own layer or those below."""
    up = [f"{m}:{line} imports {t}" for m, targets in _graph().items() for t, line in targets
          if _layer(t) > _layer(m)]
    assert not up, "imports pointing up the layers:\n" + "\n".join(sorted(up))


def test_no_import_cycle_at_all():
    graph = {m: {t for t, _ in targets} for m, targets in _graph().items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_importing_core_loads_nothing_above_it():
    core = sorted(m for m in _graph() if m.startswith("mtlprune.core"))
    code = ("import sys, importlib\n"
            f"for m in {core!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[:2][-1] in ('runs', 'study', 'render') "
            "and m.startswith('mtlprune.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


LOOPS = ("core/loop.py", "core/train.py", "core/mdl/train.py", "runs/multitask.py", "runs/multidomain.py",
         "runs/store.py", "runs/grid.py", "runs/kinds.py")


def test_training_loops_name_no_method():
    keys = set(catalogue.keys()) | {m.key for m in catalogue.MULTI_DOMAIN}
    for loop in LOOPS:
        source = (LIB / "mtlprune" / loop).read_text()
        named = {k for k in keys if f'"{k}"' in source or f"'{k}'" in source}
        assert not named, f"{loop} names methods {sorted(named)}: use the hooks"


def test_one_training_loop():
    """Every kind of run trains through `core.loop.run_loop`: no other module steps an optimizer."""
    steppers = [p.relative_to(LIB / "mtlprune").as_posix() for p in (LIB / "mtlprune").rglob("*.py")
                if ".step()" in p.read_text() and "opt" in p.read_text()]
    assert steppers == ["core/loop.py"], steppers


def test_notebook_parameters_live_in_the_notebooks():
    """The library holds no table keyed by notebook file name: no notebook stem appears in its source."""
    stems = [p.stem for p in paths.notebooks_dir().glob("*.ipynb")]
    for path in (LIB / "mtlprune").rglob("*.py"):
        source = path.read_text()
        named = [s for s in stems if s in source]
        assert not named, f"{path.relative_to(LIB)} names notebooks {named}"


def test_the_fused_heads_compute_what_each_head_computes():
    """`fused_aspp` (every head in 9 convolutions) against each head's own forward: the same outputs and gradients up
    to float rounding."""
    import torch

    from mtlprune.core.models import build_model
    from mtlprune.core.models.heads import fused_aspp, fusable
    from mtlprune.study.profiles import make_config

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
    for module in ("core/loop.py", "core/train.py", "core/models/multitask.py", "study/evidence.py",
                   "study/findings.py", "runs/multitask.py"):
        source = (LIB / "mtlprune" / module).read_text()
        named = {n for n in names if f'"{n}"' in source or f"'{n}'" in source}
        assert not named, f"{module} names tasks {sorted(named)}: read them from their task specs"
