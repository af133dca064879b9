"""Finding plugins: built-ins, the ``kdnlu.plugins`` entry-point group, and recipe ``imports:``.

Built-in components are registered exactly as a third-party plugin's would be: by importing a
module whose top level calls ``REGISTRY.register``. kdnlu itself never imports them by name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType

from kdnlu.errors import PluginLoadError
from kdnlu.plugin_code import failure

BUILTIN_MODULES = ("kdnlu_plugins", "kdnlu_tasks")
ENTRY_POINT_GROUP = "kdnlu.plugins"
DISABLE_AUTOLOAD_ENV = "KDNLU_DISABLE_PLUGIN_AUTOLOAD"

_loaded_entry_points = False


def import_module(name: str, origin: str) -> ModuleType:
    """Import a plugin module by name; failures name where the import was asked for."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
            raise PluginLoadError(
                f"{origin}: no module named '{name}'. Is the package installed in this "
                f"environment (pip install ...), or did you mean a .py file path?"
            ) from exc
        raise PluginLoadError(f"{origin}: importing '{name}' failed: {exc}") from exc
    except Exception as exc:  # a broken plugin must say which plugin broke
        raise PluginLoadError(
            f"{origin}: " + failure(f"importing '{name}'", exc, _module_origin(name))
        ) from exc


def _module_origin(name: str) -> str | None:
    """The file module ``name`` is (or would be) imported from, when Python can tell."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None


def import_file(path: Path, origin: str) -> ModuleType:
    """Import a plugin from a .py file; the same file is imported once per process."""
    path = path.resolve()
    if not path.is_file():
        raise PluginLoadError(f"{origin}: plugin file {path} does not exist")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"kdnlu_recipe_import_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"{origin}: cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PluginLoadError(f"{origin}: " + failure(f"importing {path}", exc, path)) from exc
    return module


def load_builtins() -> None:
    """Import the built-in encoders, heads, losses, samplers and tasks."""
    for name in BUILTIN_MODULES:
        import_module(name, "built-in plugins")


def load_entry_points() -> None:
    """Import every module registered under the ``kdnlu.plugins`` entry-point group, once.

    Set ``KDNLU_DISABLE_PLUGIN_AUTOLOAD=1`` to skip them (built-ins are still loaded).
    """
    global _loaded_entry_points
    if _loaded_entry_points or os.environ.get(DISABLE_AUTOLOAD_ENV, "") not in ("", "0"):
        return
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep.dist, "name", "?")
        origin = f"entry point '{ep.name} = {ep.value}' of package '{dist}'"
        try:
            target = ep.load()
        except Exception as exc:
            raise PluginLoadError(
                f"{origin}: "
                + failure("importing it", exc, _module_origin(ep.module))
                + f" Or uninstall the package, or set {DISABLE_AUTOLOAD_ENV}=1 to skip entry "
                "points."
            ) from exc
        if callable(target) and not isinstance(target, ModuleType):
            try:
                target()
            except Exception as exc:
                raise PluginLoadError(f"{origin}: " + failure("calling it", exc)) from exc
    _loaded_entry_points = True


def load_all() -> None:
    """Built-ins, then entry points."""
    load_builtins()
    load_entry_points()


def load_recipe_imports(imports: tuple[str, ...], base_dir: Path, origin: str) -> list[ModuleType]:
    """Import a recipe's ``imports:``: a .py path (relative to the recipe) or a module name.
    Returns the imported modules."""
    modules = []
    for i, item in enumerate(imports):
        where = f"{origin} imports[{i}]"
        if item.endswith(".py") or "/" in item or os.sep in item:
            path = Path(item)
            modules.append(import_file(path if path.is_absolute() else base_dir / path, where))
        else:
            modules.append(import_module(item, where))
    return modules
