"""Distillation into the multi-task student: teacher soft targets from logit stores, mixed into
each distilled task's loss through the trainer's ``on_loss`` hook.

For a distilled task with classes the loss of a batch is

    alpha * hard + (1 - alpha) * T^2 * soft_loss(student_logits / T, mean_t softmax(teacher_t / T))

and for a regression task ``alpha * hard + (1 - alpha) * mse(student_score, mean_t teacher_t)``.
A ranking or multiple-choice task (a group loss) stores one teacher score per candidate; its
soft loss is the same mix over each group's candidates: the student's softmax over a question's
candidate scores learns the teachers' mean softmax over them (scores as the loss makes them,
e.g. the ranking loss's gamma-scaled sigmoid).
``hard`` is the task's own loss on gold labels. Teacher rows are read from the store by the
batch's example indices, so they follow any shuffling, bucketing and task sampling.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from kdnlu.build import loss_target
from kdnlu.callbacks import TrainState
from kdnlu.data import EncodedSplit
from kdnlu.errors import KdnluError
from kdnlu.loss import Loss
from kdnlu.objective import (
    Objective,
    OnlineTeachers,
    TeacherTargets,
    add_projections,
    build_term,
    describe_term,
    distill_terms,
)
from kdnlu.recipe import ObjectiveTerm, Recipe
from kdnlu.recipe_checks import TEACHER_KINDS
from kdnlu.store import ATTENTION_SPLIT, HIDDEN_SPLIT, LogitStore, StoreError, fingerprint_examples
from kdnlu.task import Task

log = logging.getLogger("kdnlu.train")


class Distiller(Objective):
    """The ``distill:`` shorthand over given stores: each stored task's loss becomes the mix of
    its hard loss and the soft loss (``kdnlu.objective.distill_terms``)."""

    def __init__(
        self,
        recipe: Recipe,
        stores: dict[str, LogitStore],
        losses: Mapping[str, Loss] | None = None,
    ) -> None:
        """``losses``: the tasks' losses as built for training (built here when not given)."""
        from kdnlu.build import build_losses

        config = recipe.distill
        assert config is not None
        self.config = config
        terms = {}
        for key in stores:
            spec = recipe.tasks[key]
            target = loss_target(spec.loss.name) or (
                "score" if stores[key].spec.classes == 1 else "class"
            )
            terms[key] = [
                build_term(key, t, spec.loss) for t in distill_terms(config, spec, target)
            ]
        grouped = [k for k in stores if loss_target(recipe.tasks[k].loss.name) == "group"]
        if grouped and losses is None:
            losses = build_losses(recipe)
        teachers = [t - 1 for t in config.teachers] or None
        targets = TeacherTargets(dict(stores), {}, teachers, config.kernel)
        super().__init__(terms, targets, {k: losses[k] for k in grouped} if losses else {})

    def on_train_start(self, state: TrainState, model: torch.nn.Module) -> None:
        super().on_train_start(state, model)
        c = self.config
        schedule = ""
        if c.alpha_final is not None or c.temperature_final is not None:
            schedule = f" -> alpha {c.at(1.0)[0]:g}, T {c.at(1.0)[1]:g} by the last step"
        teachers = f"teachers {', '.join(map(str, c.teachers))} of " if c.teachers else ""
        log.info(
            "distilling %s from %s%s (alpha %g, T %g%s)",
            ", ".join(self.terms),
            teachers,
            c.store,
            c.alpha,
            c.temperature,
            schedule,
        )


def build_objective(
    recipe: Recipe,
    tasks: dict[str, Task],
    splits: dict[str, EncodedSplit],
    losses: Mapping[str, Loss],
    model: torch.nn.Module,
    distributed: bool = False,
) -> Objective | None:
    """The objective of every task that has one (``tasks.K.objective``, or the ``distill:``
    shorthand expanded), with the stores its terms read and the projections its hidden terms
    train (added to ``model``); None when no task has one."""
    config = recipe.distill
    own = {k: spec.objective for k, spec in recipe.tasks.items() if spec.objective}
    if config is None and not own:
        return None
    terms = dict(own)
    for key in shorthand_keys(recipe, tasks) if config is not None else []:
        spec = recipe.tasks[key]
        terms[key] = distill_terms(
            config, spec, loss_target(spec.loss.name) or tasks[key].label_kind
        )
    kinds = {key: {t.kind for t in ts} for key, ts in terms.items()}
    logit_keys = [k for k, found in kinds.items() if found & {"soft", "teacher_score"}]
    hidden_keys = [k for k, found in kinds.items() if "hidden" in found]
    attention_keys = [k for k, found in kinds.items() if "attention" in found]
    if (hidden_keys or attention_keys) and distributed:
        raise KdnluError(
            f"tasks {', '.join(dict.fromkeys(hidden_keys + attention_keys))}: hidden-state and "
            "attention terms are not supported under torchrun yet; train this student on one "
            "process"
        )
    teachers = [t - 1 for t in config.teachers] if config is not None else []
    kernel = config.kernel if config is not None else "auto"
    targets = TeacherTargets({}, {}, teachers or None, kernel)
    widths: dict[str, tuple[int, str]] = {}  # task -> the teachers' width, and where it is
    if config is not None and config.online:
        targets.online = online_teachers(recipe, tasks, model, terms)
        width = int(targets.online.models[0].encoder.hidden_size)  # type: ignore[union-attr]
        widths = dict.fromkeys(hidden_keys, (width, "of the online teachers"))
    else:
        targets.logits = open_stores(recipe, tasks, splits, logit_keys) if logit_keys else {}
        targets.hidden = {
            k: open_hidden_store(recipe, tasks, k, model, terms[k]) for k in hidden_keys
        }
        targets.attention = {
            k: open_hidden_store(recipe, tasks, k, model, terms[k], "attention")
            for k in attention_keys
        }
        widths = {k: (s.spec.classes, f"in {s.folder}") for k, s in targets.hidden.items()}
    built = {}
    for key, key_terms in terms.items():
        built[key] = [build_term(key, t, recipe.tasks[key].loss) for t in key_terms]
        width, source = widths.get(key, (None, ""))
        add_projections(model, key, built[key], width, source, recipe.train.seed)
        log.info("objective of %s: %s", key, " + ".join(describe_term(t) for t in key_terms))
    groups = {k: losses[k] for k in terms if loss_target(recipe.tasks[k].loss.name) == "group"}
    return Objective(built, targets, groups)


def online_teachers(
    recipe: Recipe,
    tasks: dict[str, Task],
    model: torch.nn.Module,
    terms: Mapping[str, Sequence[ObjectiveTerm]],
) -> OnlineTeachers:
    """The ``distill.online`` teachers, loaded to run inside each step: they must have every
    task that learns from them, give its outputs, tokenise as the student does, and hold the
    layers its hidden terms name."""
    from kdnlu.build import head_outputs
    from kdnlu.trained import load_trained

    config = recipe.distill
    assert config is not None
    runs = [load_trained(folder) for folder in config.online]
    vocab = model.encoder.tokenizer.get_vocab()  # type: ignore[union-attr]
    taught = [k for k, ts in terms.items() if any(t.kind in TEACHER_KINDS for t in ts)]
    for run in runs:
        where = f"distill.online: teacher {run.run_dir}"
        if run.model.encoder.tokenizer.get_vocab() != vocab:
            raise KdnluError(
                f"{where} tokenises with another vocabulary than the student; an online "
                "teacher reads the student's batches, so their vocabularies must match"
            )
        for key in taught:
            if key not in run.tasks:
                raise KdnluError(f"{where} has no task {key} ({', '.join(run.tasks)})")
            spec, theirs = recipe.tasks[key], run.recipe.tasks[key]
            ours_width = head_outputs(tasks[key], spec.loss.name)
            their_width = head_outputs(run.tasks[key], theirs.loss.name)
            if ours_width != their_width:
                raise KdnluError(
                    f"{where}: its {key} head gives {their_width} output(s), the student's "
                    f"{ours_width}"
                )

    def teacher_layers(kind: str) -> tuple[int, ...]:
        found = {n for ts in terms.values() for t in ts if t.kind == kind
                 for n in (t.config.layers or {}).values()}  # fmt: skip
        return tuple(sorted(found))

    depth = int(runs[0].model.encoder.model.config.num_hidden_layers)  # type: ignore[union-attr]
    for key, key_terms in terms.items():
        where = "the online teachers have layers"
        check_term_layers(key, key_terms, model, list(range(depth + 1)), where)
        check_term_layers(key, key_terms, model, list(range(1, depth + 1)), where, "", "attention")
        if any(t.kind == "attention" for t in key_terms):
            heads = int(runs[0].model.encoder.model.config.num_attention_heads)  # type: ignore[union-attr]
            check_heads(key, model, heads, "(online) have")
    models = [run.model for run in runs]
    layers, attention = teacher_layers("hidden"), teacher_layers("attention")
    return OnlineTeachers(models, config.hidden_tokens, layers, attention)


def check_term_layers(
    key: str,
    terms: Sequence[ObjectiveTerm],
    model: torch.nn.Module,
    available: Sequence[int],
    where: str,
    hint: str = "",
    kind: str = "hidden",
) -> None:
    """Each hidden term's student layers must be the student's, its teacher layers among
    ``available`` (``where`` and ``hint`` word the error; ``{teacher}`` in the hint is the
    layer)."""
    depth = int(model.encoder.model.config.num_hidden_layers)  # type: ignore[union-attr]
    for term in terms:
        if term.kind != kind:
            continue
        assert term.config.layers is not None
        for student, teacher in sorted(term.config.layers.items()):
            if student > depth:
                raise KdnluError(
                    f"tasks.{key}.objective: term '{term.name}' maps student layer {student}, "
                    f"but the student has {depth} layers (0 is the embeddings)"
                )
            if teacher not in available:
                raise KdnluError(
                    f"tasks.{key}.objective: term '{term.name}' maps to teacher layer {teacher}, "
                    f"but {where} {list(available)}" + hint.format(teacher=teacher)
                )


def shorthand_keys(recipe: Recipe, tasks: dict[str, Task]) -> list[str]:
    """The tasks the ``distill:`` shorthand distils: ``distill.tasks``, or every task with a
    store and no objective of its own (an error when that is none and no task has one)."""
    config = recipe.distill
    assert config is not None
    if config.tasks:
        return list(config.tasks)
    own = [k for k, spec in recipe.tasks.items() if spec.objective]
    if config.online:
        import yaml

        taught = [
            set(yaml.safe_load((Path(r) / "recipe.yaml").read_text())["tasks"])
            for r in config.online
        ]
        return [k for k in tasks if k not in own and all(k in t for t in taught)]
    root = Path(str(config.store))
    keys = [k for k in tasks if k not in own and (root / k / "train").is_dir()]
    if not keys and not own:
        raise KdnluError(
            f"distill.store {root} has no store for any task of this recipe "
            f"({', '.join(tasks)}); kdnlu-teach writes <store>/<task>/train"
        )
    return keys


def open_hidden_store(
    recipe: Recipe,
    tasks: dict[str, Task],
    key: str,
    model: torch.nn.Module,
    terms: Sequence[ObjectiveTerm],
    kind: str = "hidden",
) -> LogitStore:
    """The teachers' hidden-state (or attention) store of task ``key``, checked against the
    student's data, its layers (and heads) and the layers its terms name."""
    config = recipe.distill
    assert config is not None
    spec = recipe.tasks[key]
    split = ATTENTION_SPLIT if kind == "attention" else HIDDEN_SPLIT
    folder = Path(str(config.store)) / key / split
    examples = tasks[key].read("train", on_bad_row=spec.options.on_bad_row)
    try:
        store = LogitStore.open(
            folder, fingerprint=fingerprint_examples(examples), rows=len(examples)
        )
    except StoreError as exc:
        hint = f" (kdnlu-teach --{kind}-layers writes it)" if not folder.is_dir() else ""
        raise KdnluError(f"tasks.{key}.objective: {exc}{hint}") from None
    if store.spec.kind != kind:
        raise KdnluError(f"tasks.{key}.objective: {folder} is a {store.spec.kind} store")
    assert store.spec.layers is not None
    if store.spec.length is not None and store.spec.length != spec.options.max_length:
        raise KdnluError(
            f"tasks.{key}.objective: {folder} holds the teachers' {kind} over "
            f"{store.spec.length} token positions, but tasks.{key}.max_length is "
            f"{spec.options.max_length}; they must be equal so that positions line up"
        )
    if kind == "attention":
        check_heads(key, model, store.spec.classes, f"in {folder}")
    hint = f"; write it with kdnlu-teach --{kind}-layers covering {{teacher}}"
    where = f"{folder} holds layers"
    check_term_layers(key, terms, model, store.spec.layers, where, hint, kind)
    return store


def check_heads(key: str, model: torch.nn.Module, heads: int, source: str) -> None:
    """Attention terms compare head by head: the student needs the teachers' head count."""
    ours = int(model.encoder.model.config.num_attention_heads)  # type: ignore[union-attr]
    if ours != heads:
        raise KdnluError(
            f"tasks.{key}.objective: the student's layers have {ours} attention heads, the "
            f"teachers' {source} {heads}; attention terms compare head by head"
        )


def open_stores(
    recipe: Recipe,
    tasks: dict[str, Task],
    splits: dict[str, EncodedSplit],
    keys: Sequence[str] | None = None,
) -> dict[str, LogitStore]:
    """The training-split logit store of each task in ``keys`` (default: those the
    ``distill:`` shorthand distils), checked against the student's data."""
    from kdnlu.build import head_outputs

    config = recipe.distill
    assert config is not None
    root = Path(str(config.store))
    keys = shorthand_keys(recipe, tasks) if keys is None else keys
    stores = {}
    for key in keys:
        task, spec = tasks[key], recipe.tasks[key]
        target = loss_target(spec.loss.name) or task.label_kind
        if target not in ("class", "score", "group"):
            raise KdnluError(
                f"distill.tasks: task {key} is trained with a {target}-level loss; "
                "only classification, regression, ranking and multiple-choice tasks can be "
                "distilled"
            )
        examples = task.read("train", on_bad_row=spec.options.on_bad_row)
        try:
            store = LogitStore.open(
                root / key / "train",
                fingerprint=fingerprint_examples(examples),
                rows=len(examples),
                classes=head_outputs(task, spec.loss.name),
            )
        except StoreError as exc:
            raise KdnluError(f"distill: task {key}: {exc}") from None
        if store.spec.kind != "dense":
            raise KdnluError(
                f"distill: task {key}: {store.folder} is a top-{store.spec.top_k} store; "
                "students learn from dense stores (kdnlu-teach without --top-k)"
            )
        if config.teachers and max(config.teachers) > len(store.spec.teachers):
            raise KdnluError(
                f"distill.teachers {list(config.teachers)}: the store of task {key} "
                f"({store.folder}) holds {len(store.spec.teachers)} teacher(s), numbered from 1"
            )
        assert key not in splits or len(splits[key]) <= len(store)
        stores[key] = store
    return stores
