"""Masked-LM models: load one (fitting an output head where the checkpoint has none), cut a
smaller student out of a teacher, and save either as a Hugging Face folder.

Every saved folder loads with ``AutoModelForMaskedLM`` and, as an encoder for fine-tuning, with
``AutoModel`` (``encoder: {name: hf, path: FOLDER}`` in a recipe).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from kdnlu.errors import KdnluError
from kdnlu.hf import encoder_blocks, keep_layers
from kdnlu.mlm.corpus import MaskedCorpus, remasked
from kdnlu.options import option
from kdnlu.rundir import atomic_write_text, staged_dir

MLM_JSON = "kdnlu_mlm.json"


@dataclass
class MlmModel:
    """A masked-LM model, its tokenizer and whether its output head was trained."""

    model: nn.Module
    tokenizer: Any
    head_trained: bool
    source: str

    @property
    def layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def masked_logits(self, batch: dict[str, Any]) -> torch.Tensor:
        """Vocabulary logits ``[masked rows, V]`` at the batch's masked positions only (the
        output layer never sees the other positions)."""
        device = next(self.model.parameters()).device
        base = self.model.base_model
        hidden = base(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
        ).last_hidden_state
        picked = hidden[batch["mask_batch"].to(device), batch["mask_pos"].to(device)]
        return _head(self.model)(picked)


def _head(model: nn.Module) -> nn.Module:
    head = getattr(model, "cls", None)
    if head is None:
        raise KdnluError(
            f"{type(model).__name__} is not a BERT-style masked LM (no .cls output head); "
            "vocabulary distillation supports BERT-family checkpoints"
        )
    return head


def load_mlm(path: str) -> MlmModel:
    """A local checkpoint (or 'minilm', the bundled MiniLM-L6) as a masked LM.

    A checkpoint saved without its MLM output layer (such as the bundled sentence encoder) gets
    a fresh one, tied to the word embeddings: ``head_trained`` is then False and the head must
    be fitted (``fit_head``) before the model can teach.
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from kdnlu.hf import checkpoint_dir, quiet_transformers

    quiet_transformers()
    folder = checkpoint_dir(path)
    if not (folder / "config.json").is_file():
        raise KdnluError(f"no Hugging Face checkpoint at {folder} (config.json is missing)")
    model, info = AutoModelForMaskedLM.from_pretrained(str(folder), output_loading_info=True)
    _head(model)
    missing = [k for k in info["missing_keys"] if not k.endswith("decoder.weight")]
    head_trained = not any(k.startswith("cls.") for k in missing)
    if any(not k.startswith("cls.") for k in missing):
        raise KdnluError(f"{folder}: the checkpoint lacks encoder weights: {missing[:5]}")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return MlmModel(model, tokenizer, head_trained, str(folder))


def sentence_batches(
    order: np.ndarray, batch_size: int, corpus: MaskedCorpus
) -> Iterator[dict[str, Any]]:
    """Model batches (``MaskedCorpus.batch``) of ``order``, ``batch_size`` sentences each."""
    for start in range(0, len(order), batch_size):
        yield corpus.batch(order[start : start + batch_size])


def training_order(sentences: np.ndarray, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """Sentence indices for ``steps`` batches: shuffled epochs over ``sentences``, repeated."""
    rng = np.random.default_rng(seed)
    need = steps * batch_size
    parts, total = [], 0
    while total < need:
        parts.append(rng.permutation(sentences))
        total += len(sentences)
    return np.concatenate(parts)[:need] if parts else np.zeros(0, dtype=np.int64)


def _blocks(model: nn.Module) -> nn.ModuleList:
    owner = encoder_blocks(model)
    if owner is None:
        raise KdnluError(
            f"{type(model).__name__}: cannot find its encoder layers (base_model.encoder.layer)"
        )
    return owner.layer


@dataclass(frozen=True)
class HeadOptions:
    """How an MLM head is fitted (the options of ``kdnlu-mlm head``; see ``fit_head``)."""

    steps: int = option(300, "training steps")
    batch_size: int = option(64, "sentences per step")
    lr: float = option(1e-3, "learning rate of the head")
    seed: int = option(0, "seed of the sentence order")
    train_layers: int = option(
        0, "also train the encoder's top N layers (0: the encoder stays frozen)"
    )
    encoder_lr: float = option(1e-4, "lr of those layers")
    fixed_masks: bool = option(
        False, "train on the corpus's own masks every pass (default: mask afresh each pass)"
    )


def fit_head(
    mlm: MlmModel,
    corpus: MaskedCorpus,
    steps: int = HeadOptions.steps,
    batch_size: int = HeadOptions.batch_size,
    lr: float = HeadOptions.lr,
    seed: int = HeadOptions.seed,
    progress: bool = True,
    train_layers: int = HeadOptions.train_layers,
    encoder_lr: float = HeadOptions.encoder_lr,
    remask: bool = not HeadOptions.fixed_masks,
) -> list[float]:
    """Train the MLM output head (transform and bias; the decoder stays tied to the frozen word
    embeddings) on the corpus's masked tokens; returns the loss per step.

    The encoder is frozen, except its top ``train_layers`` layers, which learn at ``encoder_lr``
    (a sentence encoder's last layers may have drifted from word prediction; letting them adapt
    gives a much better teacher). Dropout is off throughout. With ``remask`` every pass over
    the sentences masks them afresh (pass ``e`` by the corpus's plan with seed
    ``plan seed + 1 + e``), so the head never fits the very masks the teacher is later asked
    about; without it every pass reuses the corpus's own masks.
    """
    model = mlm.model
    torch.manual_seed(seed)
    optimizer = head_optimizer(model, train_layers, lr, encoder_lr)
    model.eval()  # no dropout
    losses: list[float] = []
    order = training_order(np.arange(corpus.sentences), steps, batch_size, seed)
    bar = tqdm(total=steps, desc="fit MLM head", unit="step", disable=not progress)
    source, source_epoch = corpus, -1
    for step in range(steps):
        epoch = step * batch_size // corpus.sentences
        if remask and epoch != source_epoch:
            source = remasked(corpus, mlm.tokenizer, corpus.masking.seed + 1 + epoch)
            source_epoch = epoch
        batch = source.batch(order[step * batch_size : (step + 1) * batch_size])
        losses.append(head_step(mlm, optimizer, batch))
        bar.update()
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    bar.close()
    for p in model.parameters():
        p.requires_grad_(True)
    mlm.head_trained = True
    return losses


def head_optimizer(
    model: nn.Module, train_layers: int, lr: float, encoder_lr: float
) -> torch.optim.Optimizer:
    """AdamW over the head (not its tied decoder) and the encoder's top ``train_layers``
    layers; every other weight is frozen."""
    head, blocks = _head(model), _blocks(model)
    if not 0 <= train_layers <= len(blocks):
        raise KdnluError(
            f"train_layers must be between 0 and the model's {len(blocks)} layers, "
            f"got {train_layers}"
        )
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = [p for n, p in head.named_parameters() if "decoder.weight" not in n]
    top = [p for block in list(blocks)[len(blocks) - train_layers :] for p in block.parameters()]
    for p in trainable + top:
        p.requires_grad_(True)
    groups = [{"params": trainable, "lr": lr}]
    if top:
        groups.append({"params": top, "lr": encoder_lr})
    return torch.optim.AdamW(groups, weight_decay=0.0)


def head_step(mlm: MlmModel, optimizer: torch.optim.Optimizer, batch: dict[str, Any]) -> float:
    """One step of the head on one batch of masked sentences; its loss."""
    logits = mlm.masked_logits(batch)
    loss = nn.functional.cross_entropy(logits, batch["targets"].to(logits.device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def cut_student(teacher: MlmModel, layers: Sequence[int]) -> MlmModel:
    """A student with the teacher's embeddings, output head and the encoder layers ``layers``
    (e.g. ``[0, 2, 4]`` of six), in that order; every weight a copy of the teacher's."""
    if not layers:
        raise KdnluError("a student needs at least one layer")
    student = copy.deepcopy(teacher.model)
    keep_layers(student, layers, "student")
    student.requires_grad_(True)
    student.tie_weights()
    return MlmModel(student, teacher.tokenizer, teacher.head_trained, teacher.source)


def save_mlm(mlm: MlmModel, folder: str | Path, about: dict[str, Any]) -> Path:
    """Write the model, tokenizer and ``kdnlu_mlm.json`` (what made it) atomically to a new
    folder."""
    folder = Path(folder)
    if folder.exists():
        raise KdnluError(f"{folder} already exists; choose a new folder")
    with staged_dir(folder) as staging:
        mlm.model.save_pretrained(str(staging))
        mlm.tokenizer.save_pretrained(str(staging))
        info = {"head_trained": mlm.head_trained, "layers": mlm.layers, **about}
        atomic_write_text(staging / MLM_JSON, json.dumps(info, indent=2) + "\n")
    return folder


def ready_teacher(path: str) -> MlmModel:
    """Load a teacher for ``teach``/``distil``: its output head must have been trained."""
    mlm = load_mlm(path)
    if not mlm.head_trained:
        raise KdnluError(
            f"{mlm.source} has no trained masked-LM output layer; fit one first: "
            f"kdnlu-mlm head {path} --corpus CORPUS --out TEACHER_FOLDER"
        )
    return mlm
