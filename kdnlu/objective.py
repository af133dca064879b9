"""A task's training loss as a weighted sum of registered loss terms (``tasks.K.objective``),
run through the trainer's ``on_loss`` hook; the ``distill:`` shorthand is expanded into such
terms (``distill_terms``), so a distilled task and an objective take one code path.

Each term is ``weight(progress) * value``; its value is logged as ``distill/<task>/<name>``.
What a term's value is depends on its kind (``kdnlu.recipe_checks.term_kind``):

- ``hard``: the loss of the head's outputs against the gold labels (the task's own loss, as
  the trainer computed it, when the term's loss is the task's);
- ``teacher_score``: a regression loss against the teachers' mean score;
- ``soft``: ``T^2 * soft_loss(outputs / T, mean_t softmax(teacher_t / T))`` (through the loss's
  fused path from teacher logits where it has one); a ranking or multiple-choice task's soft
  loss is over each group's candidates;
- ``hidden``: the mean over the term's layer pairs of ``loss(P(student_s), teacher_t)``: the
  student's hidden states at layer ``s`` (through the term's learned projection ``P`` when the
  widths differ) against the teachers' mean hidden states at layer ``t`` from the hidden store,
  at [CLS] or at every unpadded token, as the store holds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from kdnlu.callbacks import Callback, TrainState
from kdnlu.data import Batch
from kdnlu.errors import KdnluError
from kdnlu.loss import Loss
from kdnlu.recipe import ComponentSpec, ObjectiveTerm, TaskSpec
from kdnlu.registry import LOSSES
from kdnlu.schema_distill import DistillConfig, ObjectiveTermConfig
from kdnlu.store import LogitStore


def distill_terms(config: DistillConfig, spec: TaskSpec, target: str) -> tuple[ObjectiveTerm, ...]:
    """The ``distill:`` shorthand for one task as objective terms: ``hard`` (the task's loss,
    weight alpha) and ``soft`` (weight 1 - alpha; for a regression task the MSE to the
    teachers' mean score); alpha and T follow their ramps."""
    final = None if config.alpha_final is None else 1 - config.alpha_final
    hard = ObjectiveTermConfig(
        loss=spec.loss.name, name="hard", weight=config.alpha, weight_final=config.alpha_final
    )
    if target == "score":
        soft = ObjectiveTermConfig(
            loss="mse", name="soft", weight=1 - config.alpha, weight_final=final, targets="teacher"
        )
        soft_loss, kind = ComponentSpec("mse", LOSSES.get("mse").config()), "teacher_score"
    else:
        soft = ObjectiveTermConfig(
            loss=config.soft_loss,
            name="soft",
            weight=1 - config.alpha,
            weight_final=final,
            temperature=config.temperature,
            temperature_final=config.temperature_final,
        )
        entry = LOSSES.get(config.soft_loss)
        soft_loss, kind = ComponentSpec(config.soft_loss, entry.config()), "soft"
    return ObjectiveTerm(hard, spec.loss, "hard"), ObjectiveTerm(soft, soft_loss, kind)


def describe_term(term: ObjectiveTerm) -> str:
    """A term as a log line shows it: ``0.5 x soft (soft_cross_entropy, T 2)``."""
    c = term.config
    weight = f"{c.weight:g}" + (f"->{c.weight_final:g}" if c.weight_final is not None else "")
    extra = f", T {c.temperature:g}" if term.kind == "soft" else ""
    if c.layers:
        extra = ", layers " + ", ".join(f"{s}->{t}" for s, t in sorted(c.layers.items()))
    return f"{weight} x {term.name} ({term.loss.name}{extra})"


@dataclass
class BuiltTerm:
    """One term ready to run: its recipe term, its built loss, and where its inputs are."""

    term: ObjectiveTerm
    loss: Loss
    same_as_task: bool = False  # a hard term with the task's own loss: reuse the trainer's
    projection: str | None = None  # key of its learned projection in model.projections


@dataclass
class TeacherTargets:
    """Where the teachers' outputs are: logit stores (soft and teacher-score terms) and hidden
    stores (hidden terms) by task key, or teachers run on each batch (``online``);
    ``teachers``: 0-based teachers of the logit stores to use (None: all); ``kernel``: the
    fused soft cross-entropy's backend."""

    logits: dict[str, LogitStore]
    hidden: dict[str, LogitStore]
    teachers: list[int] | None = None
    kernel: str = "auto"
    online: OnlineTeachers | None = None
    attention: dict[str, LogitStore] = field(default_factory=dict)

    def teacher_logits(self, batch: Batch) -> torch.Tensor:
        """Each teacher's outputs on the batch's rows, ``[B, teachers, C]``."""
        if self.online is not None:
            return self.online.outputs(batch)[0]
        rows = batch.indices.numpy()
        logits = self.logits[batch.task].logits(rows, self.teachers)
        return torch.from_numpy(logits).to(batch.input_ids.device)

    def mean_scores(self, batch: Batch) -> torch.Tensor:
        """The teachers' mean score of each row (regression), ``[B]``."""
        if self.online is not None:
            return self.online.outputs(batch)[0][:, :, 0].mean(1)
        scores = self.logits[batch.task].mean_scores(batch.indices.numpy(), self.teachers)
        return torch.from_numpy(scores).to(batch.input_ids.device)

    def layer_targets(self, batch: Batch, kind: str, layers: list[int]) -> torch.Tensor:
        """The teachers' mean states at ``layers``: hidden states (``kind`` hidden) ``[B, P, H]``
        at [CLS] or ``[B, P, T, H]`` at every position (``tokens``); attention (``attention``,
        layers from 1) ``[B, P, heads, T]`` of the [CLS] query, or ``[B, P, heads, T, T]`` of
        every query (online, ``tokens: all``). A store's positions run to its ``max_length``."""
        if self.online is not None:
            found = self.online.outputs(batch)[1 if kind == "hidden" else 2]
            return torch.stack([found[n] for n in layers], 1)
        store = (self.hidden if kind == "hidden" else self.attention)[batch.task]
        states = store.states(batch.indices.numpy(), layers)
        return torch.from_numpy(states).to(batch.input_ids.device)

    def tokens(self, key: str) -> str:
        """``cls`` or ``all``: the positions hidden-state terms of task ``key`` compare."""
        if self.online is not None:
            return self.online.tokens
        return str(self.hidden[key].spec.tokens)


TeacherOutputs = tuple[torch.Tensor, dict[int, torch.Tensor], dict[int, torch.Tensor]]


class OnlineTeachers:
    """Teacher models run on each training batch, without gradients: their outputs and mean
    hidden states at ``layers`` (all positions, or [CLS] with ``tokens: cls``), computed once
    per batch for every term that reads them."""

    def __init__(
        self,
        models: list[nn.Module],
        tokens: str,
        layers: tuple[int, ...],
        attention_layers: tuple[int, ...] = (),
    ) -> None:
        self.models, self.tokens, self.layers = models, tokens, layers
        self.attention_layers = attention_layers
        self._batch: Batch | None = None
        self._outputs: TeacherOutputs | None = None
        for model in models:
            model.eval()
            model.requires_grad_(False)

    def to(self, device: torch.device) -> None:
        for model in self.models:
            model.to(device)

    @torch.no_grad()
    def outputs(self, batch: Batch) -> TeacherOutputs:
        """Each teacher's logits ``[B, teachers, C]``, and their mean hidden states and
        attention maps by layer."""
        if self._batch is batch and self._outputs is not None:
            return self._outputs
        logits, states = [], {n: [] for n in self.layers}
        maps: dict[int, list[torch.Tensor]] = {n: [] for n in self.attention_layers}
        for model in self.models:
            if not self.layers and not self.attention_layers:
                logits.append(model(batch).float())
                continue
            encoder = model.encoder  # type: ignore[union-attr]
            hidden, attentions = encoder.layer_outputs(
                batch.input_ids, batch.attention_mask, batch.token_type_ids,
                bool(self.attention_layers),
            )  # fmt: skip
            logits.append(model.heads[batch.task](hidden[-1], batch.attention_mask).float())  # type: ignore[index]
            for n in self.layers:
                states[n].append(hidden[n][:, 0] if self.tokens == "cls" else hidden[n])
            for n in self.attention_layers:
                layer = attentions[n - 1]
                maps[n].append(layer[:, :, 0] if self.tokens == "cls" else layer)
        mean = {n: torch.stack(s).float().mean(0) for n, s in states.items()}
        mean_maps = {n: torch.stack(m).float().mean(0) for n, m in maps.items()}
        self._batch, self._outputs = batch, (torch.stack(logits, 1), mean, mean_maps)
        return self._outputs


class Objective(Callback):
    """Replaces each task's loss with its objective's weighted sum of terms."""

    def __init__(
        self,
        terms: Mapping[str, list[BuiltTerm]],
        targets: TeacherTargets,
        group_losses: Mapping[str, Loss] | None = None,
    ) -> None:
        """``group_losses``: the built losses of ranking and multiple-choice tasks (their group
        size and scores shape the soft loss over candidates)."""
        self.terms = dict(terms)
        self.targets = targets
        self.group_losses = dict(group_losses or {})
        self.model: nn.Module | None = None

    def on_train_start(self, state: TrainState, model: nn.Module) -> None:
        self.model = model
        if self.targets.online is not None:  # the teachers run where the student does
            self.targets.online.to(next(model.parameters()).device)
        kinds = {t.term.kind for ts in self.terms.values() for t in ts}
        if "hidden" in kinds:
            model.encoder.capture_hidden = True  # type: ignore[union-attr]
        if "attention" in kinds:  # probabilities that sum to one: no dropout on them
            model.encoder.capture_attentions = True  # type: ignore[union-attr]
            model.encoder.eager_attention(attention_dropout=False)  # type: ignore[union-attr]

    def on_loss(
        self, state: TrainState, batch: Batch, logits: torch.Tensor, loss: torch.Tensor
    ) -> torch.Tensor:
        terms = self.terms.get(batch.task)
        if not terms:
            return loss
        progress = state.step / max(1, state.total_steps)
        total: torch.Tensor | None = None
        for built in terms:
            weight, temperature = built.term.config.at(progress)
            value = self.value(built, batch, logits, loss, temperature)
            state.log_scalar(f"distill/{batch.task}/{built.term.name}", float(value.detach()))
            total = weight * value if total is None else total + weight * value
        assert total is not None
        return total

    def value(
        self,
        built: BuiltTerm,
        batch: Batch,
        logits: torch.Tensor,
        loss: torch.Tensor,
        temperature: float,
    ) -> torch.Tensor:
        """One term's unweighted value on a batch."""
        kind = built.term.kind
        if kind == "hard":
            return loss if built.same_as_task else built.loss(logits.float(), batch.labels)
        if kind == "hidden":
            return self.hidden_value(built, batch)
        if kind == "attention":
            return self.attention_value(built, batch)
        if kind == "teacher_score":
            return built.loss(logits.float(), self.targets.mean_scores(batch))
        teacher = self.targets.teacher_logits(batch)
        if batch.task in self.group_losses:
            return group_soft_loss(
                self.group_losses[batch.task], built.loss, logits.float(), teacher, temperature
            )
        return class_soft_loss(
            built.loss, logits.float(), teacher, temperature, self.targets.kernel
        )

    def hidden_value(self, built: BuiltTerm, batch: Batch) -> torch.Tensor:
        """The mean over the term's layer pairs of the hidden loss (see the module's doc)."""
        assert self.model is not None and built.term.config.layers is not None
        captured = self.model.encoder.captured  # type: ignore[union-attr]
        pairs = sorted(built.term.config.layers.items())
        teacher = self.targets.layer_targets(batch, "hidden", [t for _, t in pairs])
        tokens = self.targets.tokens(batch.task)
        project = self.model.projections[built.projection] if built.projection else None  # type: ignore[index]
        mask = batch.attention_mask.bool()
        values = []
        for position, (layer, _) in enumerate(pairs):
            student = captured[layer].float()
            if tokens == "cls":
                student, target = student[:, 0], teacher[:, position]
            else:
                width = student.shape[1]
                student, target = student[mask], teacher[:, position, :width][mask]
            if project is not None:
                student = project(student)
            values.append(built.loss(student, target))
        return torch.stack(values).mean()

    def attention_value(self, built: BuiltTerm, batch: Batch) -> torch.Tensor:
        """The mean over the term's layer pairs of the attention loss: one row per head and
        query ([CLS], or every unpadded query), a distribution over the keys."""
        assert self.model is not None and built.term.config.layers is not None
        captured = self.model.encoder.captured_attentions  # type: ignore[union-attr]
        pairs = sorted(built.term.config.layers.items())
        teacher = self.targets.layer_targets(batch, "attention", [t for _, t in pairs])
        every_query = teacher.ndim == 5
        mask = batch.attention_mask.bool()
        values = []
        for position, (layer, _) in enumerate(pairs):
            student = captured[layer - 1].float()  # [B, heads, T, T]
            target = teacher[:, position]
            if every_query:  # rows of the unpadded queries: [N, heads, T]
                student, target = student.transpose(1, 2)[mask], target.transpose(1, 2)[mask]
            else:  # the [CLS] query's rows; a store's run to its max_length
                student = student[:, :, 0]
                target = target[..., : student.shape[-1]]
            width = student.shape[-1]
            values.append(built.loss(student.reshape(-1, width), target.reshape(-1, width)))
        return torch.stack(values).mean()


def class_soft_loss(
    soft_loss: Loss, logits: torch.Tensor, teacher: torch.Tensor, temperature: float, kernel: str
) -> torch.Tensor:
    """The soft loss of class logits against teachers' logits ``[B, teachers, C]``: the
    registered soft loss's own path from teacher logits where it has one (a fused kernel),
    else ``T^2 * soft_loss(logits / T, mean_t softmax(teacher_t / T))``."""
    direct = getattr(soft_loss, "from_teacher_logits", None)
    if direct is not None:
        return direct(logits, teacher, temperature, kernel)
    target = torch.softmax(teacher / temperature, -1).mean(1)
    return temperature**2 * soft_loss(logits / temperature, target)


def group_soft_loss(
    group_loss: Loss,
    soft_loss: Loss,
    logits: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """The soft loss over each group's candidates: ``teacher`` is ``[B, teachers, 1]``."""
    size = int(group_loss.group_size or 1)
    scores = group_loss.scores or (lambda x: x)
    student = scores(logits.reshape(-1)).view(-1, size)
    by_teacher = scores(teacher[..., 0]).view(-1, size, teacher.shape[1])
    target = torch.softmax(by_teacher / temperature, 1).mean(2)
    return temperature**2 * soft_loss(student / temperature, target)


def build_term(key: str, term: ObjectiveTerm, task_loss: ComponentSpec) -> BuiltTerm:
    """A term's loss built from the registry (its target checked as the task's loss is)."""
    from kdnlu.build import build_loss

    loss = build_loss(key, term.loss)
    return BuiltTerm(term, loss, same_as_task=term.kind == "hard" and term.loss == task_loss)


def add_projections(
    model: nn.Module,
    key: str,
    terms: list[BuiltTerm],
    teacher_width: int | None,
    source: str,
    seed: int = 0,
) -> None:
    """A learned linear map from the student's width to the teachers' for each hidden term
    whose widths differ (``project: true`` always adds one, ``false`` never); the model keeps
    them (``model.projections``), so the optimizer trains and checkpoints save them. Each starts
    from ``seed`` alone, whatever was drawn before (so store-read and online teachers give the
    same student)."""
    student_width = int(model.encoder.hidden_size)  # type: ignore[union-attr]
    for i, built in enumerate(terms):
        if built.term.kind != "hidden":
            continue
        assert teacher_width is not None
        wanted = built.term.config.project
        if wanted is None:
            wanted = teacher_width != student_width
        if not wanted and teacher_width != student_width:
            raise KdnluError(
                f"tasks.{key}.objective: term '{built.term.name}' compares the student's "
                f"{student_width}-wide hidden states with the teachers' {teacher_width}-wide "
                f"ones {source}, and `project: false` allows no projection; drop it "
                "(a learned projection is added when widths differ)"
            )
        if wanted:
            built.projection = f"{key}__{i}"
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + i)
                projection = nn.Linear(student_width, teacher_width)
            model.projections[built.projection] = projection  # type: ignore[index]
