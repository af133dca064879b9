"""Encoders: any local Hugging Face checkpoint, the bundled MiniLM-L6, and a tiny random BERT."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from kdnlu.config import FieldError, check_fraction, doc_field, path_field
from kdnlu.errors import KdnluError
from kdnlu.hf import MINILM, checkpoint_dir, keep_layers, load_tokenizer, quiet_transformers
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
    """A transformers model returning the last hidden states, with its tokenizer attached.

    Segment ids reach the model only when it has segment embeddings (``type_vocab_size`` of 2
    or more, as BERT and ALBERT); RoBERTa/XLM-R (one segment), DeBERTa-v2 (none) and models
    without the notion get ``None``, whatever ids the tokenizer made.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, folder: Path | None = None) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.hidden_size = int(model.config.hidden_size)
        self.uses_token_types = int(getattr(model.config, "type_vocab_size", 0) or 0) > 1
        self.max_length = max_positions(model.config)
        self.folder = folder
        # intermediate-layer distillation sets capture_hidden: each training forward then
        # keeps its hidden states (embeddings first, as Hugging Face numbers them) in captured
        self.capture_hidden = False
        self.captured: tuple[torch.Tensor, ...] | None = None
        # attention-distribution distillation sets capture_attentions (and eager attention)
        self.capture_attentions = False
        self.captured_attentions: tuple[torch.Tensor, ...] | None = None

    def pretrained_pooler(self) -> dict[str, torch.Tensor] | None:
        """The checkpoint's pooler (``weight`` and ``bias`` of its dense layer), if it has one."""
        return read_pooler(self.folder) if self.folder is not None else None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        keep = self.capture_hidden and self.training
        keep_attentions = self.capture_attentions and self.training
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids if self.uses_token_types else None,
            output_hidden_states=keep,
            **({"output_attentions": True} if keep_attentions else {}),
        )
        self.captured = out.hidden_states if keep else None
        self.captured_attentions = out.attentions if keep_attentions else None
        return out.last_hidden_state

    def eager_attention(self, attention_dropout: bool = True) -> int:
        """Compute attention in plain torch, the one implementation that returns the attention
        probabilities (fused kernels do not); ``attention_dropout=False`` also turns off the
        dropout on those probabilities in BERT-style self-attention modules, so that what is
        returned sums to one over the keys. Returns how many modules had it turned off."""
        self.model.set_attn_implementation("eager")
        changed = 0
        for module in self.model.modules() if not attention_dropout else ():
            dropout = getattr(module, "dropout", None)
            if type(module).__name__.endswith("SelfAttention") and isinstance(dropout, nn.Dropout):
                dropout.p = 0.0
                changed += 1
        return changed

    def layer_outputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attentions: bool = False,
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Every layer's hidden states ``[B, T, H]`` (the embeddings' first) and, with
        ``attentions``, every layer's attention probabilities ``[B, heads, T, T]`` (the model
        switches to eager attention for them)."""
        if attentions:
            self.eager_attention()
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids if self.uses_token_types else None,
            output_hidden_states=True,
            **({"output_attentions": True} if attentions else {}),
        )
        return tuple(out.hidden_states), tuple(out.attentions) if attentions else ()

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Every layer's hidden states ``[B, T, H]``, the embeddings' first."""
        return self.layer_outputs(input_ids, attention_mask, token_type_ids)[0]


POOLER_SUFFIXES = ("pooler.dense.", "pooler.")  # BERT/RoBERTa/XLM-R style, then ALBERT's
PARTS = ("weight", "bias")


def read_pooler(folder: Path) -> dict[str, torch.Tensor] | None:
    """The pooler's dense layer from a checkpoint's safetensors weights, without building the
    model; ``None`` when the checkpoint has none (e.g. an encoder exported by kdnlu)."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        import json

        weight_map = json.loads(index.read_text())["weight_map"]
        files = {name: folder / shard for name, shard in weight_map.items()}
    elif (folder / "model.safetensors").is_file():
        with safe_open(str(folder / "model.safetensors"), "pt") as fh:
            files = dict.fromkeys(fh.keys(), folder / "model.safetensors")
    else:
        return None
    for suffix in POOLER_SUFFIXES:
        names = {
            part: [n for n in files if n.endswith(suffix + part)] for part in ("weight", "bias")
        }
        if all(len(found) == 1 for found in names.values()):
            out = {}
            for part, (name,) in names.items():
                with safe_open(str(files[name]), "pt") as fh:
                    out[part] = fh.get_tensor(name)
            return out
    return None


# dropout settings of Hugging Face configs: BERT/ALBERT/RoBERTa/DeBERTa style, then DistilBERT's
DROPOUT_KEYS = (
    ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    ("dropout", "attention_dropout"),
)


def dropout_overrides(model_config: Any, dropout: float, folder: Path) -> dict[str, float]:
    """The config values that set a checkpoint's hidden and attention dropout to ``dropout``."""
    for keys in DROPOUT_KEYS:
        if all(hasattr(model_config, key) for key in keys):
            return dict.fromkeys(keys, dropout)
    known = ", ".join(key for keys in DROPOUT_KEYS for key in keys)
    raise KdnluError(
        f"encoder.dropout: the checkpoint {folder} (model type {model_config.model_type}) has "
        f"none of the dropout settings kdnlu knows ({known}); leave encoder.dropout unset to "
        "keep the checkpoint's own",
    )


@dataclass(frozen=True)
class HfConfig:
    """A pretrained Hugging Face checkpoint, its dropout and the encoder layers to keep."""

    path: str = path_field(
        MINILM,
        aliases=(MINILM,),
        help="a local Hugging Face checkpoint folder (`AutoModel` + `AutoTokenizer`; WordPiece, "
        "BPE and sentencepiece tokenizers alike; segment ids are passed only to models with "
        "segment embeddings), or `minilm`, the bundled MiniLM-L6",
    )
    dropout: float | None = doc_field(
        None, "sets the checkpoint's hidden and attention dropout (null: the checkpoint's own)"
    )
    allow_pickle: bool = doc_field(
        False,
        "weights are read from safetensors only; true also reads a `pytorch_model.bin` (a "
        "pickle: loading it can run code, so only from a source you trust)",
    )
    layers: tuple[int, ...] | None = doc_field(
        None,
        "keep only these encoder layers of the checkpoint, in this order (e.g. `[0, 2, 4]` of "
        "6): a shallower, faster student whose layers start from the checkpoint's own, that "
        "`kdnlu export` writes as a checkpoint of that depth",
    )

    def __post_init__(self) -> None:
        check_checkpoint_dir("path", self.path)
        check_fraction("dropout", self.dropout)
        if self.layers is not None:
            if not self.layers or len(set(self.layers)) != len(self.layers):
                raise FieldError(
                    "layers",
                    f"must be distinct layer numbers, at least one, got {list(self.layers)}",
                )
            if min(self.layers) < 0:
                raise FieldError("layers", f"layer numbers start at 0, got {list(self.layers)}")


@ENCODERS.register("hf", config=HfConfig)
def hf_encoder(config: HfConfig) -> HfEncoder:
    """Any local Hugging Face checkpoint (AutoModel); 'minilm' is the bundled MiniLM-L6."""
    from transformers import AutoConfig, AutoModel

    quiet_transformers()
    folder = checkpoint_dir(config.path)
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
        model_config = AutoConfig.from_pretrained(str(folder))
        if config.dropout is not None:
            for key, value in dropout_overrides(model_config, config.dropout, folder).items():
                setattr(model_config, key, value)
        if model_config.model_type == "bert":
            options["add_pooling_layer"] = False
        model = AutoModel.from_pretrained(str(folder), config=model_config, **options)
        if config.layers is not None:
            keep_layers(model, config.layers, "encoder.layers")
    except (OSError, ValueError, SafetensorError) as exc:
        reason = " ".join(str(exc).split())
        raise KdnluError(
            f"encoder.path {folder}: cannot load this Hugging Face checkpoint (is its config.json "
            f"valid JSON, are its weights complete?): {reason[:300]}"
        ) from None
    return HfEncoder(model, load_tokenizer(config.path), folder)


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
