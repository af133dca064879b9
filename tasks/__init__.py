"""Built-in kdnlu tasks, one module per task family."""

from kdnlu_tasks import conll, generic, glue  # noqa: F401  (import registers)
