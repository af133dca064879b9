"""One flat registry class and the registries every component is found in."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kdnlu.errors import RegistryError

T = TypeVar("T")


@dataclass(frozen=True)
class NoConfig:
    """Config of a component that takes no options."""


REQUIRED: Any = object()  # a Fact without a default


@dataclass(frozen=True)
class Fact:
    """Something every component of one registry declares where it is registered (a metric's
    direction, say): its type, its default (required when there is none) and what it means."""

    type: type | tuple[type, ...]
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple[Any, ...] | None = None  # the values it (for a tuple: its items) may take

    def type_words(self) -> str:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        return " or ".join("None" if t is type(None) else t.__name__ for t in types)


@dataclass(frozen=True)
class Entry:
    """A registered component: the callable that builds it and the dataclass that configures it.

    ``facts`` holds what its registry asks every component to declare (see ``Fact``);
    ``source`` is ``file:line`` of the builder, for errors about plugin code.
    """

    name: str
    builder: Callable[..., Any]
    config: type
    module: str
    description: str
    facts: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source: str = ""

    def build(self, config: Any = None, **runtime: Any) -> Any:
        """Build the component from its config (defaults when None) and runtime arguments."""
        if config is None:
            config = self.config()
        return self.builder(config, **runtime)


def source_of(obj: Any) -> str:
    """``file:line`` where a function or class is defined ("" when Python cannot tell)."""
    target = inspect.unwrap(getattr(obj, "func", obj))  # functools.partial -> function
    try:
        return f"{inspect.getsourcefile(target)}:{inspect.getsourcelines(target)[1]}"
    except (OSError, TypeError):
        return ""


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def doc_summary(obj: Any) -> str:
    """The first sentence of ``obj``'s docstring as one line (a docstring's first paragraph may
    wrap over several lines); the whole first paragraph when it has no sentence end."""
    doc = inspect.getdoc(obj) or ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    return SENTENCE_END.split(paragraph, maxsplit=1)[0]


class Registry:
    """Maps names to builders of one kind of component (encoder, head, loss, sampler, task)."""

    def __init__(
        self,
        kind: str,
        plural: str,
        autoload: bool = False,
        facts: Mapping[str, Fact] | None = None,
    ) -> None:
        self.kind = kind
        self.plural = plural
        self.autoload = autoload
        self.facts: Mapping[str, Fact] = dict(facts or {})
        self._entries: dict[str, Entry] = {}

    def _load_plugins(self) -> None:
        """Import built-ins and entry-point plugins on first use (no-op afterwards)."""
        if self.autoload:
            from kdnlu import discovery

            discovery.load_all()

    def register(
        self,
        name: str,
        config: type | None = None,
        description: str | None = None,
        **facts: Any,
    ) -> Callable[[T], T]:
        """Decorator: register a builder ``builder(config, **runtime)`` under ``name``.

        ``config`` must be a frozen dataclass; its fields are the recipe keys of the component.
        ``facts`` are what this registry asks each component to declare (``self.facts``).
        """
        config_cls = NoConfig if config is None else config
        if not (dataclasses.is_dataclass(config_cls) and config_cls.__dataclass_params__.frozen):
            raise RegistryError(
                f"{self.kind} '{name}': config must be a frozen dataclass "
                f"(@dataclass(frozen=True)), got {config_cls!r}"
            )
        declared = self._check_facts(name, facts)

        def decorator(builder: T) -> T:
            module = getattr(builder, "__module__", "?")
            source = source_of(builder)
            previous = self._entries.get(name)
            if previous is not None and not _same_builder(previous, builder, source):
                raise RegistryError(self._twice_message(name, previous, module, source))
            self._entries[name] = Entry(
                name=name,
                builder=builder,  # type: ignore[arg-type]
                config=config_cls,
                module=module,
                description=description or doc_summary(builder),
                facts=declared,
                source=source,
            )
            return builder

        return decorator

    def _check_facts(self, name: str, facts: Mapping[str, Any]) -> dict[str, Any]:
        """The facts a registration declares, defaults filled in; wrong ones raise."""
        where = f"{self.kind} '{name}'"
        for key in facts:
            if key not in self.facts:
                known = ", ".join(self.facts) or "none"
                raise RegistryError(
                    f"{where}: unknown keyword '{key}' for {self.plural}.register "
                    f"(the {self.plural} registry takes: {known})"
                )
        declared = {}
        for key, fact in self.facts.items():
            if key not in facts and fact.default is REQUIRED:
                raise RegistryError(
                    f"{where}: register it with {key}=... ({fact.doc or fact.type_words()})"
                )
            value = facts.get(key, fact.default)
            if not isinstance(value, fact.type):
                raise RegistryError(
                    f"{where}: {key} must be {fact.type_words()}, got {value!r} ({fact.doc})"
                )
            items = value if isinstance(value, tuple) else (value,)
            wrong = [v for v in items if v is not None and v not in (fact.choices or items)]
            if wrong or (fact.choices and not items):
                raise RegistryError(
                    f"{where}: {key} takes {'some' if isinstance(value, tuple) else 'one'} of "
                    f"{', '.join(map(str, fact.choices or ()))}; "
                    f"got {value!r}"
                )
            declared[key] = value
        return declared

    def _twice_message(self, name: str, previous: Entry, module: str, source: str) -> str:
        first, again = _module_file(previous.module), _module_file(module)
        if first is not None and first == again:
            return (
                f"{self.kind} '{name}' is registered twice by the same file {first}, loaded "
                f"twice (as module '{previous.module}' and as '{module}'). Load it once: drop "
                "the duplicate from imports: (a file path and a module name can name the same "
                "file), or the import of it in another plugin."
            )
        return (
            f"{self.kind} '{name}' is registered twice: first by module "
            f"'{previous.module}', again by module '{module}'. Rename one of them."
        )

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


def _module_file(module: str) -> str | None:
    """The resolved file an imported module was loaded from (None when not known)."""
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None)
    return str(Path(path).resolve()) if path else None


def _same_builder(previous: Entry, builder: Any, source: str) -> bool:
    """Registering the same function again (a module re-imported under its own name)."""
    qualname = getattr(builder, "__qualname__", repr(builder))
    return (
        previous.module == getattr(builder, "__module__", "?")
        and getattr(previous.builder, "__qualname__", None) == qualname
        and previous.source == source
    )


METRIC_TARGETS = ("class", "score", "token")
METRIC_FACTS = {
    "greater_is_better": Fact(bool, doc="True when a higher value is a better model"),
    "targets": Fact(
        tuple,
        ("class", "score"),
        "the label kinds it scores: class, score (regression), token (per-word tags)",
        choices=METRIC_TARGETS,
    ),
    "groups": Fact(
        bool, False, "True when it scores whole groups (questions): metric(pred, gold, groups)"
    ),
}

HEAD_LEVELS = ("sequence", "token")
HEAD_FACTS = {
    "level": Fact(
        str,
        "sequence",
        "what the head gives: sequence (one output row per example) or token (one per token)",
        choices=HEAD_LEVELS,
    ),
}
LOSS_TARGETS = ("class", "score", "group", "token", "soft", "hidden", "attention")
LOSS_FACTS = {
    "target": Fact(
        (str, type(None)),
        None,
        "the labels it takes: class, score, group (candidates ranked within groups), token or "
        "soft (teacher distributions); None: whatever labels its task has",
        choices=LOSS_TARGETS,
    ),
}

ENCODERS = Registry("encoder", "encoders", autoload=True)
HEADS = Registry("head", "heads", autoload=True, facts=HEAD_FACTS)
"""Heads: ``builder(config, hidden_size, num_outputs) -> nn.Module``, registered with ``level``."""
LOSSES = Registry("loss", "losses", autoload=True, facts=LOSS_FACTS)
"""Losses: ``builder(config) -> loss(logits, labels)``, registered with ``target``."""
SAMPLERS = Registry("sampler", "samplers", autoload=True)
TASKS = Registry("task", "tasks", autoload=True)
METRICS = Registry("metric", "metrics", autoload=True, facts=METRIC_FACTS)
"""Metrics: ``metric(pred, gold) -> float``, registered with ``greater_is_better``."""

REGISTRIES: dict[str, Registry] = {
    r.plural: r for r in (ENCODERS, HEADS, LOSSES, SAMPLERS, TASKS, METRICS)
}
