"""Losses against plain reference computations (values and gradients), and their errors."""

import numpy as np
import pytest
import torch

from kdnlu import discovery
from kdnlu.config import FieldError
from kdnlu.registry import LOSSES
from kdnlu_plugins.losses import Loss, RankingConfig

discovery.load_builtins()


def build(name: str, **options):
    entry = LOSSES.get(name)
    return entry.build(entry.config(**options))


def value_and_grad(fn, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits.detach().clone().requires_grad_(True)
    value = fn(logits)
    (grad,) = torch.autograd.grad(value, logits)
    return value.detach(), grad


def assert_same(fn, reference, logits: torch.Tensor) -> None:
    """Same value and same gradient with respect to the logits."""
    value, grad = value_and_grad(fn, logits)
    ref_value, ref_grad = value_and_grad(reference, logits)
    torch.testing.assert_close(value, ref_value)
    torch.testing.assert_close(grad, ref_grad)


def smoothed_nll(log_probs: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Per-row cross-entropy with label smoothing, written out: [N, C], [N] -> [N]."""
    nll = -log_probs.gather(-1, labels[:, None]).squeeze(-1)
    return (1 - smoothing) * nll - smoothing * log_probs.mean(-1)


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("cross_entropy", "class"),
        ("mse", "score"),
        ("ranking", "group"),
        ("token_cross_entropy", "token"),
    ],
)
def test_targets(name: str, target: str) -> None:
    loss = build(name)
    assert isinstance(loss, Loss) and loss.target == target


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(smoothing: float) -> None:
    logits, labels = torch.randn(6, 4), torch.tensor([0, 3, 1, 2, 2, 0])
    loss = build("cross_entropy", label_smoothing=smoothing)

    def reference(z: torch.Tensor) -> torch.Tensor:
        return smoothed_nll(z.log_softmax(-1), labels, smoothing).mean()

    assert_same(lambda z: loss(z, labels), reference, logits)
    _, grad = value_and_grad(lambda z: loss(z, labels), logits)
    if smoothing == 0.0:  # the textbook gradient: (softmax - one-hot) / N
        expected = (logits.softmax(-1) - torch.eye(4)[labels]) / 6
        torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("shape", [(5, 1), (5,)])
def test_mse(shape: tuple) -> None:
    logits, labels = torch.randn(shape), torch.tensor([0.0, 1.5, 5.0, 2.25, 3.0])
    loss = build("mse")
    assert_same(lambda z: loss(z, labels), lambda z: ((z.reshape(5) - labels) ** 2).mean(), logits)
    _, grad = value_and_grad(lambda z: loss(z, labels), logits)
    torch.testing.assert_close(grad, (2 * (logits.reshape(5) - labels) / 5).reshape(shape))


def test_mse_takes_integer_labels() -> None:
    loss = build("mse")(torch.tensor([[1.0], [2.0]]), torch.tensor([1, 4]))
    assert loss.item() == pytest.approx(2.0)


def test_mse_rejects_class_logits() -> None:
    with pytest.raises(ValueError) as err:
        build("mse")(torch.randn(4, 3), torch.zeros(4))
    assert str(err.value) == (
        "mse loss expects one score per row (logits [B, 1] or [B]) and labels [B]; "
        "got logits [4, 3] and labels [4]"
    )


def ranking_reference(
    scores: torch.Tensor, labels: torch.Tensor, size: int, gamma: float = 5.0, positive: int = 0
) -> torch.Tensor:
    """Mean over groups of -log softmax of the right candidate, over gamma * sigmoid(score)."""
    total = scores.new_zeros(())
    groups = len(scores) // size
    for g in range(groups):
        rows = slice(g * size, (g + 1) * size)
        s, y = gamma * scores[rows].reshape(size).sigmoid(), labels[rows]
        right = int((y == positive).nonzero())
        total = total - (s[right].exp() / s.exp().sum()).log()
    return total / groups


@pytest.mark.parametrize(
    ("size", "labels", "gamma"),
    [(2, [1, 0, 0, 1, 1, 0], 5.0), (3, [1, 1, 0, 0, 1, 1], 1.0), (2, [0, 1], 10.0)],
)
def test_ranking(size: int, labels: list, gamma: float) -> None:
    labels_t = torch.tensor(labels)
    logits = torch.randn(len(labels), 1)
    loss = build("ranking", group_size=size, gamma=gamma)

    def reference(z: torch.Tensor) -> torch.Tensor:
        return ranking_reference(z, labels_t, size, gamma)

    assert_same(lambda z: loss(z, labels_t), reference, logits)
    # [B] scores work the same as [B, 1]
    assert_same(lambda z: loss(z, labels_t), reference, logits.reshape(-1))


def test_ranking_gradient_is_softmax_minus_right_through_the_sigmoid() -> None:
    scores = torch.tensor([0.5, -1.0, 2.0, 0.0])
    labels = torch.tensor([1, 0, 0, 1])
    _, grad = value_and_grad(lambda z: build("ranking", gamma=3.0)(z, labels), scores)
    relevance = scores.sigmoid()
    groups = (3.0 * relevance).view(2, 2).softmax(-1)
    outer = (groups - torch.tensor([[0.0, 1.0], [1.0, 0.0]])) / 2
    expected = outer.reshape(4) * 3.0 * relevance * (1 - relevance)
    torch.testing.assert_close(grad, expected)


def test_ranking_positive_label_is_configurable() -> None:
    scores, labels = torch.randn(4), torch.tensor([1, 0, 0, 1])
    flipped = build("ranking", positive_label=1)(scores, labels)
    torch.testing.assert_close(flipped, build("ranking")(scores, 1 - labels))


def test_ranking_decode_picks_each_groups_best_and_thresholds_lone_rows() -> None:
    decode = build("ranking").decode
    outputs = np.array([[0.3], [2.0], [-1.0], [-0.5], [0.7], [5.0], [-5.0], [1.0], [1.0]])
    groups = np.array([0, 0, 1, 1, 2, 3, 4, 5, 5])
    # group 0: row 1 wins; group 1: row 3 wins though negative; rows 4-6 alone: score > 0;
    # group 5 ties: the first row wins. Class 0 is the right one (positive_label 0).
    assert decode(outputs, groups).tolist() == [1, 0, 1, 0, 0, 0, 1, 0, 1]
    flipped = build("ranking", positive_label=1).decode(outputs, groups)
    assert flipped.tolist() == [0, 1, 0, 1, 1, 1, 0, 1, 0]


def test_ranking_batch_must_hold_whole_groups() -> None:
    with pytest.raises(ValueError) as err:
        build("ranking", group_size=3)(torch.randn(4, 1), torch.tensor([0, 1, 1, 0]))
    assert str(err.value) == (
        "ranking loss: a batch of 4 rows is not a whole number of groups of group_size 3; "
        "each group's candidates must be consecutive rows, so the batch size must be a "
        "multiple of 3"
    )


def test_ranking_group_without_positive() -> None:
    with pytest.raises(ValueError) as err:
        build("ranking")(torch.randn(6), torch.tensor([0, 1, 1, 1, 1, 0]))
    assert str(err.value) == (
        "ranking loss: group 1 (rows 2 to 3) has no positive candidate; each group needs "
        "exactly one row labelled 0"
    )


def test_ranking_group_with_two_positives() -> None:
    with pytest.raises(ValueError) as err:
        build("ranking")(torch.randn(4), torch.tensor([0, 0, 1, 0]))
    assert str(err.value) == (
        "ranking loss: group 0 (rows 0 to 1) has 2 positive candidates; each group needs "
        "exactly one row labelled 0"
    )


def test_ranking_rejects_class_logits() -> None:
    with pytest.raises(ValueError, match=r"^ranking loss expects one score per row"):
        build("ranking")(torch.randn(4, 2), torch.tensor([1, 0, 0, 1]))


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"group_size": 1}, "group_size", "must be at least 2, got 1"),
        ({"positive_label": 2}, "positive_label", "must be 0 or 1 (a binary task's class), got 2"),
        ({"gamma": 0.0}, "gamma", "must be positive, got 0.0"),
    ],
)
def test_ranking_config_is_checked(options: dict, field: str, message: str) -> None:
    with pytest.raises(FieldError) as err:
        RankingConfig(**options)
    assert err.value.field_name == field and str(err.value) == message


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_token_cross_entropy(smoothing: float) -> None:
    logits = torch.randn(2, 5, 3)
    labels = torch.tensor([[0, 2, 1, -100, -100], [1, -1, 2, 2, -100]])  # any negative: ignored
    loss = build("token_cross_entropy", label_smoothing=smoothing)
    labelled = labels >= 0

    def reference(z: torch.Tensor) -> torch.Tensor:
        return smoothed_nll(z[labelled].log_softmax(-1), labels[labelled], smoothing).mean()

    assert_same(lambda z: loss(z, labels), reference, logits)
    _, grad = value_and_grad(lambda z: loss(z, labels), logits)
    assert (grad[~labelled] == 0).all()


def test_token_cross_entropy_without_labelled_tokens_is_zero() -> None:
    value, grad = value_and_grad(
        lambda z: build("token_cross_entropy")(z, torch.full((2, 3), -100)), torch.randn(2, 3, 4)
    )
    assert value.item() == 0.0 and (grad == 0).all()


def test_token_cross_entropy_checks_shapes() -> None:
    with pytest.raises(ValueError) as err:
        build("token_cross_entropy")(torch.randn(2, 3), torch.tensor([0, 1]))
    assert str(err.value) == (
        "token_cross_entropy expects logits [B, L, C] and labels [B, L]; "
        "got logits [2, 3] and labels [2]"
    )


def test_loss_target_must_be_known() -> None:
    with pytest.raises(ValueError) as err:
        Loss("pairs", lambda z, y: z.sum())
    assert str(err.value) == (
        "loss target must be one of class, score, group, token, soft, hidden, attention, got "
        "'pairs'"
    )


def test_soft_cross_entropy() -> None:
    logits = torch.randn(4, 3)
    targets = torch.softmax(torch.randn(4, 3), -1)
    loss = build("soft_cross_entropy")
    assert loss.target == "soft"

    def reference(z: torch.Tensor) -> torch.Tensor:
        return -(targets * torch.log(torch.softmax(z, -1))).sum(-1).mean()

    assert_same(lambda z: loss(z, targets), reference, logits)
    _, grad = value_and_grad(lambda z: loss(z, targets), logits)
    torch.testing.assert_close(grad, (logits.softmax(-1) - targets) / 4)
    with pytest.raises(
        ValueError, match=r"^soft_cross_entropy expects logits \[B, C\] and targets"
    ):
        loss(logits, targets[:, :2])
