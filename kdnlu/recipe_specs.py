"""A validated recipe as frozen dataclasses: what every run reads (``kdnlu.recipe`` builds
them from YAML and ``--set`` overrides, and re-exports them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from kdnlu.config import to_plain
from kdnlu.registry import TASKS
from kdnlu.schema import TaskOptions, TrainConfig
from kdnlu.schema_distill import DistillConfig, ObjectiveTermConfig
from kdnlu.task import Task


@dataclass(frozen=True)
class ComponentSpec:
    """A registered component chosen by name, with its validated config."""

    name: str
    config: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **to_plain(self.config)}


@dataclass(frozen=True)
class ObjectiveTerm:
    """One term of a task's objective: its settings, its loss, and what it compares (``kind``:
    ``hard`` gold labels, ``teacher_score`` the teachers' mean score, ``soft`` the teachers'
    distribution, ``hidden`` their hidden states)."""

    config: ObjectiveTermConfig
    loss: ComponentSpec
    kind: str

    @property
    def name(self) -> str:
        return self.config.name or self.loss.name

    def to_dict(self) -> dict[str, Any]:
        settings = {k: v for k, v in to_plain(self.config).items() if k != "loss"}
        return {"loss": self.loss.name, **settings, **to_plain(self.loss.config)}


@dataclass(frozen=True)
class TaskSpec:
    """One task of a recipe: the task plugin, its head and loss, and the shared options."""

    name: str
    config: Any
    head: ComponentSpec
    loss: ComponentSpec
    options: TaskOptions = field(default_factory=TaskOptions)
    objective: tuple[ObjectiveTerm, ...] = ()

    def build(self, data_root: str | None) -> Task:
        return TASKS.get(self.name).build(self.config, data_root=data_root)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **to_plain(self.options),
            **to_plain(self.config),
            "head": self.head.to_dict(),
            "loss": self.loss.to_dict(),
            **({"objective": [t.to_dict() for t in self.objective]} if self.objective else {}),
        }


@dataclass(frozen=True)
class Recipe:
    """A fully validated recipe: everything a run needs, with defaults filled in."""

    name: str
    encoder: ComponentSpec
    tasks: dict[str, TaskSpec]
    sampler: ComponentSpec
    train: TrainConfig
    data_root: str | None = None
    output_dir: str = "runs"
    cache_dir: str | None = None
    imports: tuple[str, ...] = ()
    distill: DistillConfig | None = None
    source: str = field(default="", compare=False)
    data_root_source: str = field(default="", compare=False)  # which rule chose data_root

    def build_tasks(self) -> dict[str, Task]:
        return {key: spec.build(self.data_root) for key, spec in self.tasks.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "data_root": self.data_root,
            "output_dir": self.output_dir,
            "cache_dir": self.cache_dir,
            "imports": list(self.imports),
            "encoder": self.encoder.to_dict(),
            "tasks": {key: spec.to_dict() for key, spec in self.tasks.items()},
            "sampler": self.sampler.to_dict(),
            "train": to_plain(self.train),
            **({"distill": to_plain(self.distill)} if self.distill else {}),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)
