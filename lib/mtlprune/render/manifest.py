"""The manifest of the study (`notebooks/manifest.yml`): its chapters in book order, each a notebook with the
parameter variants papermill executes it with, the profiles whose book has it, and the plan that declares its runs
(`study.plans`, read by `plan`). What papermill injects into a variant is `notebook_parameters`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core import catalogue, paths
from ..study.plans import PLANS
from ..study.profiles import PROFILES


@dataclass(frozen=True)
class Variant:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    title: str | None = None  # the page title in the book's table of contents


@dataclass(frozen=True)
class Chapter:
    notebook: str  # stem inside notebooks/
    part: str
    variants: tuple[Variant, ...]
    # per profile, parameters every variant gets on top of its own (e.g. smaller grids for the seconds-long smoke
    # profile that CI builds); the quick and full studies use the notebooks' own defaults
    profile_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: tuple[str, ...] = PROFILES  # the profiles whose book has this chapter (manifest key `profiles`)
    opens_book: bool = False  # its page is the book's landing page (manifest key `opens_book`), the intro follows it
    plan: str | None = None  # the `study.plans` entry that declares the runs its notebook runs (manifest key `plan`)

    def output_stem(self, variant: Variant) -> str:
        return self.notebook if len(self.variants) == 1 else f"{self.notebook}__{variant.name}"


def load_manifest(path: Path | None = None) -> list[Chapter]:
    path = path or paths.notebooks_dir() / "manifest.yml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the notebook manifest {path}: {exc}") from None
    chapters = []
    for i, entry in enumerate(data.get("chapters", [])):
        if "notebook" not in entry or "part" not in entry:
            raise ValueError(f"{path}: chapter #{i} needs `notebook` and `part`")
        nb = paths.notebooks_dir() / f"{entry['notebook']}.ipynb"
        if not nb.exists():
            raise ValueError(f"{path}: chapter #{i} names {nb.name}, which does not exist in notebooks/")
        raw = entry.get("variants") or [{"name": "main", "parameters": {}}]
        if "variants_from_catalogue" in entry:  # one variant per catalogued method of that role
            role = entry["variants_from_catalogue"]
            keys = catalogue.keys(role)
            if not keys or "variants" in entry:
                raise ValueError(f"{path}: chapter #{i}: variants_from_catalogue {role!r} names no catalogued role "
                                 f"(or is given together with variants)")
            raw = [{"name": k, "title": catalogue.label(k), "parameters": {"method": k}} for k in keys]
        variants = tuple(Variant(v["name"], dict(v.get("parameters") or {}), v.get("title")) for v in raw)
        per_profile = {p: dict(v or {}) for p, v in (entry.get("profile_parameters") or {}).items()}
        unknown_profiles = set(per_profile) - set(PROFILES)
        if unknown_profiles:
            raise ValueError(f"{path}: chapter #{i} has profile_parameters for {sorted(unknown_profiles)}; "
                             f"valid: {', '.join(PROFILES)}")
        in_profiles = tuple(entry.get("profiles") or PROFILES)
        if set(in_profiles) - set(PROFILES):
            raise ValueError(f"{path}: chapter #{i} lists unknown profile(s) {sorted(set(in_profiles) - set(PROFILES))}"
                             f" under `profiles`; valid: {', '.join(PROFILES)}")
        plan = entry.get("plan")
        if plan is not None and plan not in PLANS:
            raise ValueError(f"{path}: chapter #{i} names plan {plan!r}; valid: {', '.join(PLANS.names())} "
                             f"(study.plans)")
        chapters.append(Chapter(entry["notebook"], entry["part"], variants, per_profile, in_profiles,
                                bool(entry.get("opens_book", False)), plan))
    if not chapters:
        raise ValueError(f"{path} lists no chapters")
    return chapters


def notebook_parameters(chapter: Chapter, variant: Variant, profile: str) -> dict[str, Any]:
    """What papermill injects into `variant` of `chapter` for `profile` (on top of the notebook's defaults)."""
    return {**variant.parameters, **chapter.profile_parameters.get(profile, {}), "profile": profile,
            "progress": False}
