"""Built-in kdnlu components, registered the same way a third-party plugin registers its own."""

from kdnlu_plugins import encoders, heads, losses, metrics, samplers, san  # noqa: F401
