"""Print the pip section of environment.yml as a requirements list (stdlib only: runs before any install)."""
import sys
from pathlib import Path


def pip_requirements(text: str) -> list[str]:
    reqs, in_pip, indent = [], False, None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped == "- pip:":
            in_pip, indent = True, len(line) - len(line.lstrip())
            continue
        if in_pip:
            if len(line) - len(line.lstrip()) <= indent:
                break
            reqs.append(stripped[1:].strip())
    if not reqs:
        raise SystemExit("environment.yml has no `- pip:` section; cannot derive the requirements")
    return reqs


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "environment.yml")
    print("\n".join(pip_requirements(path.read_text())))
