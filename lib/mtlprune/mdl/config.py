"""Frozen configurations of the multi-domain runs and their ids (`mdl-<method>-<hash>`, the hash over the fully
resolved config, as for the multi-task runs: `identity`). Profiles and validation: `mdl.profiles`.

A method run *contains* the source (pretraining) run it starts from, so the dependency is part of its identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import config_hash
from ..data.domains import DOMAINS, DomainsSpec


@dataclass(frozen=True)
class MDLData:
    """`synthetic=None` means the Visual Decathlon release on disk (`MTLPRUNE_DECATHLON`)."""

    synthetic: DomainsSpec | None = DomainsSpec()
    domains: tuple[str, ...] = DOMAINS
    source: str = "shapes"  # the domain whose `source` split pretrains the backbone (ImageNet's role)
    size: int = 32
    test_split: str = "test"  # the real release withholds test labels: use "val" there


@dataclass(frozen=True)
class MDLModel:
    widths: tuple[int, ...] = (12, 24, 48)
    blocks: int = 1  # basic blocks per stage (ResNet-26: 4)


@dataclass(frozen=True)
class SourceConfig:
    """Pretraining on the source domain: the shared backbone every method starts from. Trained once, at `seed`, and
    shared by every seed of the multi-domain runs, as one set of ImageNet weights is in the papers."""

    data: MDLData = field(default_factory=MDLData)
    model: MDLModel = field(default_factory=MDLModel)
    iterations: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    weight_decay: float = 1e-4
    threads: int = 0  # CPU threads of the run (0: the process's); part of the id because it changes float rounding

    @property
    def run_id(self) -> str:
        return f"mdlsource-{config_hash(self)}"


@dataclass(frozen=True)
class MethodConfig:
    """The multi-domain method (registry in `mdl.methods`) and its budget / sharing choices."""

    name: str = "budget_aware"
    budget: float = 0.5  # fraction of the switchable weights each domain may use
    sharing: str = "union"  # none | union | intersection | jaccard
    sharing_weight: float = 1.0  # the initial weight of the sharing term
    learnable_weight: bool = False  # the weight ascends on the sharing term (a Lagrange-style multiplier)
    granularity: str = "filter"  # filter | slice (BA²'s (filter, input channel) switches)
    budget_weight: float = 0.0  # weight of a per-domain budget hinge on top of the exact projection (BA²'s soft form)
    train_backbone: bool = True  # switch methods: train the shared convolutions jointly (false: BA²'s frozen backbone)
    switch_init: float = 0.5
    dual_lr: float = 0.05  # ascent step of a learnable sharing weight


@dataclass(frozen=True)
class MDLTrain:
    iterations: int = 50
    batch_size: int = 12  # per domain and step (every step sees every domain)
    lr: float = 2e-3  # BatchNorms, heads (and the backbone when a method trains it)
    switch_lr: float = 0.02
    weight_decay: float = 1e-4
    # CPU threads per run (0: the process's). Pinned, the numbers do not depend on the executor, and the local
    # executor packs runs of fewer threads than the machine has cores side by side (`executors`)
    threads: int = 0


@dataclass(frozen=True)
class MDLConfig:
    source: SourceConfig = field(default_factory=SourceConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: MDLTrain = field(default_factory=MDLTrain)

    @property
    def kind(self) -> str:
        return f"mdl-{self.method.name}"

    @property
    def run_id(self) -> str:
        return f"{self.kind}-{config_hash(self)}"
