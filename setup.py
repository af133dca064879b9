"""Packaging: the framework ``kdnlu`` plus the built-in ``kdnlu_plugins`` and ``kdnlu_tasks``."""

from setuptools import setup

setup(
    packages=[
        "kdnlu",
        "kdnlu.bench",
        "kdnlu.glue_data",
        "kdnlu.kernels",
        "kdnlu.mlm",
        "kdnlu.store",
        "kdnlu_plugins",
        "kdnlu_tasks",
    ],
    package_dir={"kdnlu": "kdnlu", "kdnlu_plugins": "plugins", "kdnlu_tasks": "tasks"},
)
