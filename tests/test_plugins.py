"""Plugins from a recipe's imports: and from a separately installed package's entry point."""

import subprocess
from pathlib import Path

import pytest

from conftest import TINY_RECIPE, pip_offline, run_python, write
from kdnlu import discovery
from kdnlu.errors import KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.registry import HEADS, LOSSES

HEAD_PLUGIN = '''\
from dataclasses import dataclass

from torch import nn

from kdnlu.registry import HEADS


@dataclass(frozen=True)
class MeanConfig:
    """Options of the mean-pooling head."""

    scale: float = 1.0


class MeanHead(nn.Module):
    def __init__(self, config, hidden_size, num_outputs):
        super().__init__()
        self.scale = config.scale
        self.out = nn.Linear(hidden_size, num_outputs)

    def forward(self, hidden, attention_mask):
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return self.out(self.scale * (hidden * mask).sum(1) / mask.sum(1))


@HEADS.register("{name}", config=MeanConfig)
def build(config, hidden_size, num_outputs):
    """Linear layer over the mean of the token vectors."""
    return MeanHead(config, hidden_size, num_outputs)
'''


@pytest.fixture
def cleanup_registries():
    discovery.load_builtins()
    before = {reg: set(reg.names()) for reg in (HEADS, LOSSES)}
    yield
    for reg, names in before.items():
        for name in set(reg.names()) - names:
            reg.unregister(name)


def test_import_of_a_file_relative_to_the_recipe(tmp_path: Path, cleanup_registries) -> None:
    write(tmp_path / "exp" / "my_plugins" / "mean_head.py", HEAD_PLUGIN.format(name="file_mean"))
    text = TINY_RECIPE + "imports: [my_plugins/mean_head.py]\n"
    text = text.replace("rte: {train_rows", "rte: {head: {name: file_mean, scale: 2.0}, train_rows")
    recipe = load_recipe(write(tmp_path / "exp" / "r.yaml", text))
    assert recipe.tasks["rte"].head.name == "file_mean"
    assert recipe.tasks["rte"].head.config.scale == 2.0
    assert recipe.imports == (str(tmp_path / "exp" / "my_plugins" / "mean_head.py"),)
    # loading the same recipe again imports the file once and does not clash with itself
    assert load_recipe(tmp_path / "exp" / "r.yaml") == recipe


def test_import_of_a_module_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cleanup_registries
) -> None:
    write(tmp_path / "lib" / "kdnlu_test_mod_plugin.py", HEAD_PLUGIN.format(name="module_mean"))
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    text = TINY_RECIPE + "imports: [kdnlu_test_mod_plugin]\n"
    text = text.replace("rte: {train_rows", "rte: {head: module_mean, train_rows")
    recipe = load_recipe(write(tmp_path / "r.yaml", text))
    assert recipe.tasks["rte"].head.name == "module_mean"


def test_import_errors_name_the_recipe(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE + "imports: [missing.py, no_such_module_x]\n")
    with pytest.raises(KdnluError) as err:
        load_recipe(path)
    assert (
        str(err.value)
        == f"{path}: imports[0]: plugin file {tmp_path / 'missing.py'} does not exist"
    )
    path = write(tmp_path / "r2.yaml", TINY_RECIPE + "imports: [no_such_module_x]\n")
    with pytest.raises(KdnluError) as err:
        load_recipe(path)
    assert str(err.value) == (
        f"{path}: imports[0]: no module named 'no_such_module_x'. Is the package installed in this "
        "environment (pip install ...), or did you mean a .py file path?"
    )


def test_broken_plugin_file_says_which(tmp_path: Path) -> None:
    write(tmp_path / "broken.py", "raise RuntimeError('boom')\n")
    path = write(tmp_path / "r.yaml", TINY_RECIPE + "imports: [broken.py]\n")
    with pytest.raises(KdnluError) as err:
        load_recipe(path)
    assert str(err.value) == (
        f"{path}: imports[0]: importing {tmp_path / 'broken.py'} failed in plugin code at "
        f"{tmp_path / 'broken.py'}:1: RuntimeError: boom. Fix the plugin (--debug shows the "
        "traceback)."
    )


def test_the_same_file_loaded_twice_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a recipe's file path and as a module name: one file, two modules, one message."""
    write(tmp_path / "twice_head.py", HEAD_PLUGIN.replace("{name}", "twice_mean"))
    monkeypatch.syspath_prepend(str(tmp_path))
    text = TINY_RECIPE + "imports: [twice_head.py, twice_head]\n"
    path = write(tmp_path / "r.yaml", text)
    try:
        with pytest.raises(KdnluError) as err:
            load_recipe(path)
    finally:
        HEADS.unregister("twice_mean")
    file = tmp_path / "twice_head.py"
    message = str(err.value)
    assert message.startswith(
        f"{path}: imports[1]: importing 'twice_head' failed in plugin code at {file}:26: "
        "RegistryError: "
    )
    assert f"head 'twice_mean' is registered twice by the same file {file}, loaded" in message
    assert "twice (as module 'kdnlu_recipe_import_twice_head_" in message
    assert "and as 'twice_head'). Load it once: drop the duplicate from imports:" in message


@pytest.fixture(scope="module")
def third_party_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plugin package with a ``kdnlu.plugins`` entry point, built and installed by pip."""
    src = tmp_path_factory.mktemp("src")
    write(
        src / "pyproject.toml",
        """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "kdnlu-demo-plugin"
version = "0.0.1"

[project.entry-points."kdnlu.plugins"]
demo = "kdnlu_demo_plugin"

[tool.setuptools]
packages = ["kdnlu_demo_plugin"]
""",
    )
    write(src / "kdnlu_demo_plugin" / "__init__.py", HEAD_PLUGIN.format(name="demo_mean"))
    site = tmp_path_factory.mktemp("site")
    pip_offline("install", "--target", str(site), str(src))
    return site


def run_kdnlu(args: list[str], site: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return run_python(["-m", "kdnlu.cli", *args], cwd, (site,), **env)


def test_entry_point_plugin_is_listed_and_usable(third_party_site: Path, tmp_path: Path) -> None:
    listed = run_kdnlu(["list", "heads"], third_party_site, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert (
        "  demo_mean  -  Linear layer over the mean of the token vectors.  [kdnlu_demo_plugin]"
    ) in listed.stdout
    assert "      scale: float = 1.0" in listed.stdout
    text = TINY_RECIPE.replace("rte: {train_rows", "rte: {head: demo_mean, train_rows")
    recipe = write(tmp_path / "r.yaml", text)
    checked = run_kdnlu(["check", str(recipe)], third_party_site, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "  rte: 32 train / 16 dev rows, head demo_mean," in checked.stdout


def test_environment_variable_disables_entry_points(third_party_site: Path, tmp_path: Path) -> None:
    listed = run_kdnlu(
        ["list", "heads"], third_party_site, tmp_path, KDNLU_DISABLE_PLUGIN_AUTOLOAD="1"
    )
    assert listed.returncode == 0 and "demo_mean" not in listed.stdout
    assert "classification" in listed.stdout  # built-ins still load


def test_registries_load_builtins_on_first_lookup(tmp_path: Path) -> None:
    code = "from kdnlu.registry import TASKS, HEADS; print(TASKS.get('rte').name, len(HEADS) > 0)"
    proc = run_python(["-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "rte True\n"


def test_a_loss_that_is_a_plain_function_trains(tmp_path: Path) -> None:
    """A loss plugin may return any callable; without a target it is taken for the task's."""
    from conftest import TINY_RECIPE, write
    from kdnlu.recipe import load_recipe
    from kdnlu.trainer import train

    write(
        tmp_path / "plain_loss.py",
        "import torch.nn.functional as F\n"
        "from kdnlu.registry import LOSSES\n\n\n"
        '@LOSSES.register("plain_ce_for_test")\n'
        "def plain(config):\n"
        '    """Cross-entropy as a plain function."""\n'
        "    return lambda logits, labels: F.cross_entropy(logits, labels)\n",
    )
    text = TINY_RECIPE.replace("rte: {", "rte: {loss: plain_ce_for_test, ")
    recipe = load_recipe(write(tmp_path / "r.yaml", "imports: [plain_loss.py]\n" + text))
    try:
        result = train(recipe, progress=False)
        assert result.steps == 4 and set(result.metrics) == {"rte", "mrpc"}
    finally:
        LOSSES.unregister("plain_ce_for_test")
