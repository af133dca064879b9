"""Encoders: any local Hugging Face checkpoint, the bundled MiniLM-L6, and a tiny random BERT."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from kdnlu.config import FieldError, check_fraction, path_field
from kdnlu.errors import KdnluError
from kdnlu.hf import MINILM, checkpoint_dir, load_tokenizer, quiet_transformers
from kdnlu.registry import ENCODERS


def check_checkpoint_dir(field_name: str, path: str) -> None:
    if path == MINILM:
        return
    folder = Path(path)
    if not folder.is_dir():
        raise FieldError(
            field_name,
            f"no Hugging Face checkpoint at {folder}: the directory does not exist. Give a local "
            f"folder with config.json and weights, or '{MINILM}' for the bundled MiniLM-L6",
        )
    if not (folder / "config.json").is_file():
        raise FieldError(
            field_name,
            f"{folder} is not a Hugging Face checkpoint: it has no config.json",
        )


def max_positions(config: Any) -> int | None:
    """The longest input (in tokens) a transformers config has position embeddings for; RoBERTa
    and its kin number positions from pad_token_id + 1, so they take that many fewer."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    if config.model_type in ("roberta", "xlm-roberta", "camembert"):
        positions -= int(config.pad_token_id or 0) + 1
    return positions


class HfEncoder(nn.Module):
    """A transformers model returning the last hidden states, with its tokenizer attached."""

    def __init__(self, model: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.hidden_size = int(model.config.hidden_size)
        self.max_length = max_positions(model.config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.last_hidden_state


@dataclass(frozen=True)
class HfConfig:
    """Pretrained checkpoint folder (or 'minilm') and optional dropout override. Weights are
    read from safetensors only; ``allow_pickle`` also reads a ``pytorch_model.bin`` (a pickle:
    loading it can run code, so only from a source you trust)."""

    path: str = path_field(MINILM, aliases=(MINILM,))
    dropout: float | None = None
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        check_checkpoint_dir("path", self.path)
        check_fraction("dropout", self.dropout)


@ENCODERS.register("hf", config=HfConfig)
def hf_encoder(config: HfConfig) -> HfEncoder:
    """Any local Hugging Face checkpoint (AutoModel); 'minilm' is the bundled MiniLM-L6."""
    from transformers import AutoConfig, AutoModel

    quiet_transformers()
    folder = checkpoint_dir(config.path)
    overrides: dict[str, Any] = {}
    if config.dropout is not None:
        overrides = {
            "hidden_dropout_prob": config.dropout,
            "attention_probs_dropout_prob": config.dropout,
        }
    if not config.allow_pickle and not any(folder.glob("*.safetensors")):
        pickles = ", ".join(sorted(p.name for p in folder.glob("*.bin"))) or "no weights file"
        raise KdnluError(
            f"encoder.path {folder} has no safetensors weights ({pickles}); kdnlu reads weights "
            "from safetensors only, since a pickle such as pytorch_model.bin can run code when "
            "loaded. Convert it to model.safetensors, or set encoder.allow_pickle: true if you "
            "trust where it came from"
        )
    # with allow_pickle, None lets transformers take a .bin when there is no safetensors file
    options: dict[str, Any] = {"use_safetensors": None if config.allow_pickle else True}
    try:
        model_config = AutoConfig.from_pretrained(str(folder), **overrides)
        if model_config.model_type == "bert":
            options["add_pooling_layer"] = False
        model = AutoModel.from_pretrained(str(folder), config=model_config, **options)
    except (OSError, ValueError, SafetensorError) as exc:
        reason = " ".join(str(exc).split())
        raise KdnluError(
            f"encoder.path {folder}: cannot load this Hugging Face checkpoint (is its config.json "
            f"valid JSON, are its weights complete?): {reason[:300]}"
        ) from None
    return HfEncoder(model, load_tokenizer(config.path))


@dataclass(frozen=True)
class TinyConfig:
    """Shape of a small randomly initialised BERT and where its (real) vocabulary comes from."""

    layers: int = 2
    hidden_size: int = 64
    heads: int = 2
    intermediate_size: int = 128
    dropout: float = 0.1
    seed: int = 0
    tokenizer: str = path_field(MINILM, aliases=(MINILM,))

    def __post_init__(self) -> None:
        if self.hidden_size % self.heads:
            raise FieldError(
                "heads", f"hidden_size {self.hidden_size} is not divisible by heads {self.heads}"
            )
        check_fraction("dropout", self.dropout)
        check_checkpoint_dir("tokenizer", self.tokenizer)


@ENCODERS.register("tiny", config=TinyConfig)
def tiny_encoder(config: TinyConfig) -> HfEncoder:
    """Small random BERT with a real vocabulary, for tests and quick experiments."""
    from transformers import BertConfig, BertModel

    tokenizer = load_tokenizer(config.tokenizer)
    bert_config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        intermediate_size=config.intermediate_size,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        max_position_embeddings=512,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = BertModel(bert_config, add_pooling_layer=False)
    return HfEncoder(model, tokenizer)
