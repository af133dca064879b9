"""One flat registry class and the five registries every component is found in."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from kdnlu.errors import RegistryError

T = TypeVar("T")


@dataclass(frozen=True)
class NoConfig:
    """Config of a component that takes no options."""


@dataclass(frozen=True)
class Entry:
    """A registered component: the callable that builds it and the dataclass that configures it."""

    name: str
    builder: Callable[..., Any]
    config: type
    module: str
    description: str

    def build(self, config: Any = None, **runtime: Any) -> Any:
        """Build the component from its config (defaults when None) and runtime arguments."""
        if config is None:
            config = self.config()
        return self.builder(config, **runtime)


def first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class Registry:
    """Maps names to builders of one kind of component (encoder, head, loss, sampler, task)."""

    def __init__(self, kind: str, plural: str, autoload: bool = False) -> None:
        self.kind = kind
        self.plural = plural
        self.autoload = autoload
        self._entries: dict[str, Entry] = {}

    def _load_plugins(self) -> None:
        """Import built-ins and entry-point plugins on first use (no-op afterwards)."""
        if self.autoload:
            from kdnlu import discovery

            discovery.load_all()

    def register(
        self, name: str, config: type | None = None, description: str | None = None
    ) -> Callable[[T], T]:
        """Decorator: register a builder ``builder(config, **runtime)`` under ``name``.

        ``config`` must be a frozen dataclass; its fields are the recipe keys of the component.
        """
        config_cls = NoConfig if config is None else config
        if not (dataclasses.is_dataclass(config_cls) and config_cls.__dataclass_params__.frozen):
            raise RegistryError(
                f"{self.kind} '{name}': config must be a frozen dataclass "
                f"(@dataclass(frozen=True)), got {config_cls!r}"
            )

        def decorator(builder: T) -> T:
            module = getattr(builder, "__module__", "?")
            qualname = getattr(builder, "__qualname__", repr(builder))
            previous = self._entries.get(name)
            if previous is not None:
                same = (
                    previous.module == module
                    and getattr(previous.builder, "__qualname__", None) == qualname
                )
                if not same:
                    raise RegistryError(
                        f"{self.kind} '{name}' is registered twice: first by module "
                        f"'{previous.module}', again by module '{module}'. Rename one of them."
                    )
            self._entries[name] = Entry(
                name=name,
                builder=builder,  # type: ignore[arg-type]
                config=config_cls,
                module=module,
                description=description or first_doc_line(builder),
            )
            return builder

        return decorator

    def get(self, name: str, key_path: str | None = None) -> Entry:
        """Return the entry for ``name``; unknown names raise with close matches."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry
        self._load_plugins()
        if name in self._entries:
            return self._entries[name]
        where = f" at {key_path}" if key_path else ""
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.6)
        if close:
            hint = "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        else:
            hint = f"known {self.plural}: {', '.join(sorted(self._entries)) or '(none)'}"
        raise RegistryError(
            f"unknown {self.kind} '{name}'{where}; {hint} "
            f"(`kdnlu list {self.plural}` shows every registered {self.kind})"
        )

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive sessions)."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter([self._entries[name] for name in self.names()])

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._entries)


ENCODERS = Registry("encoder", "encoders", autoload=True)
HEADS = Registry("head", "heads", autoload=True)
LOSSES = Registry("loss", "losses", autoload=True)
SAMPLERS = Registry("sampler", "samplers", autoload=True)
TASKS = Registry("task", "tasks", autoload=True)

REGISTRIES: dict[str, Registry] = {r.plural: r for r in (ENCODERS, HEADS, LOSSES, SAMPLERS, TASKS)}
