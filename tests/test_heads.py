"""Heads: output shapes, the linear heads against plain references, and the SAN's behaviour."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from kdnlu import discovery
from kdnlu.config import FieldError
from kdnlu.registry import HEADS
from kdnlu_plugins.heads import DropoutConfig
from kdnlu_plugins.san import (
    SanConfig,
    average_step_probabilities,
    prediction_keep_mask,
)

discovery.load_builtins()

B, L, H = 4, 6, 8


def build(name: str, num_outputs: int = 3, **options):
    entry = HEADS.get(name)
    return entry.build(entry.config(**options), hidden_size=H, num_outputs=num_outputs)


def padded_mask() -> torch.Tensor:
    mask = torch.ones(B, L, dtype=torch.long)
    mask[0, 4:] = 0
    mask[2, 2:] = 0
    return mask


@pytest.mark.parametrize(
    ("name", "num_outputs", "level", "shape"),
    [
        ("classification", 3, "sequence", (B, 3)),
        ("regression", 1, "sequence", (B, 1)),
        ("ranking", 1, "sequence", (B, 1)),
        ("san", 3, "sequence", (B, 3)),
        ("token", 5, "token", (B, L, 5)),
    ],
)
def test_output_shape_and_level(name: str, num_outputs: int, level: str, shape: tuple) -> None:
    head = build(name, num_outputs)
    assert head.level == level
    assert head(torch.randn(B, L, H), padded_mask()).shape == shape


@pytest.mark.parametrize("name", ["classification", "regression", "ranking"])
def test_cls_heads_are_a_linear_layer_over_the_first_token(name: str) -> None:
    head = build(name, 2).eval()
    hidden = torch.randn(B, L, H)
    reference = hidden[:, 0] @ head.out.weight.T + head.out.bias
    torch.testing.assert_close(head(hidden, padded_mask()), reference)


@pytest.mark.parametrize("name", ["classification", "regression", "ranking"])
def test_mean_pooling_averages_the_unpadded_tokens(name: str) -> None:
    head = build(name, 2, pooling="mean").eval()
    hidden, mask = torch.randn(B, L, H), padded_mask()
    means = torch.stack([hidden[b, : int(mask[b].sum())].mean(0) for b in range(B)])
    torch.testing.assert_close(head(hidden, mask), means @ head.out.weight.T + head.out.bias)
    assert head.pooler is None and set(head.state_dict()) == {"out.weight", "out.bias"}


@pytest.mark.parametrize("name", ["classification", "regression", "ranking"])
def test_pooler_pooling_is_tanh_of_a_dense_layer_over_the_first_token(name: str) -> None:
    head = build(name, 2, pooling="pooler").eval()
    hidden = torch.randn(B, L, H)
    pooled = torch.tanh(hidden[:, 0] @ head.pooler.dense.weight.T + head.pooler.dense.bias)
    torch.testing.assert_close(
        head(hidden, padded_mask()), pooled @ head.out.weight.T + head.out.bias
    )


def test_pooling_is_checked() -> None:
    from kdnlu.config import Context, build_dataclass
    from kdnlu.errors import RecipeError
    from kdnlu.yaml_source import Location

    ctx = Context(locations={}, default_location=Location("r.yaml", 3))
    with pytest.raises(RecipeError) as err:
        build_dataclass(HEADS.get("classification").config, {"pooling": "max"}, ("head",), ctx)
    assert str(err.value) == (
        "r.yaml:3: head.pooling: expected one of 'cls', 'mean', 'pooler', got 'max' (a string)"
    )


def test_token_head_is_a_linear_layer_over_every_token() -> None:
    head = build("token", 5).eval()
    hidden = torch.randn(B, L, H)
    reference = hidden @ head.out.weight.T + head.out.bias
    torch.testing.assert_close(head(hidden, padded_mask()), reference)


def test_dropout_is_applied_in_training_only() -> None:
    head = build("regression", 1, dropout=0.5)
    hidden = torch.randn(B, L, H)
    torch.manual_seed(0)
    assert not torch.equal(head(hidden, padded_mask()), head(hidden, padded_mask()))
    head.eval()
    assert torch.equal(head(hidden, padded_mask()), head(hidden, padded_mask()))


def test_dropout_config_is_checked() -> None:
    with pytest.raises(FieldError, match=r"^must be in \[0, 1\), got 1.0$") as err:
        DropoutConfig(dropout=1.0)
    assert err.value.field_name == "dropout"


# --- SAN ---


def test_san_config_is_checked() -> None:
    with pytest.raises(FieldError, match="^must be at least 1, got 0$") as err:
        SanConfig(steps=0)
    assert err.value.field_name == "steps"
    with pytest.raises(FieldError) as err:
        SanConfig(prediction_dropout=1.0)
    assert err.value.field_name == "prediction_dropout"


def test_san_needs_classes() -> None:
    with pytest.raises(ValueError) as err:
        build("san", 1)
    assert str(err.value) == (
        "the san head predicts class probabilities and needs at least 2 outputs, got 1; "
        "use the 'regression' head for a score"
    )


def test_san_has_one_prediction_per_step() -> None:
    head = build("san", 3, steps=4)
    assert head.step_logits(torch.randn(B, L, H), padded_mask()).shape == (B, 4, 3)


@pytest.mark.parametrize("initial_state", ["cls", "self_attention"])
def test_san_eval_output_is_the_log_of_the_mean_step_probability(initial_state: str) -> None:
    torch.manual_seed(0)
    head = build("san", 3, steps=5, dropout=0.2, initial_state=initial_state).eval()
    hidden, mask = torch.randn(B, L, H), padded_mask()
    out = head(hidden, mask)
    assert torch.equal(out, head(hidden, mask))  # deterministic at evaluation
    probs = head.step_logits(hidden, mask).softmax(-1).mean(1)
    torch.testing.assert_close(out, probs.log())
    # the output is a normalised log-distribution, so cross-entropy on it is the NLL of the mean
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(B))
    labels = torch.tensor([0, 2, 1, 1])
    torch.testing.assert_close(
        F.cross_entropy(out, labels), -probs[torch.arange(B), labels].log().mean()
    )


@pytest.mark.parametrize("initial_state", ["cls", "self_attention"])
def test_san_ignores_masked_tokens(initial_state: str) -> None:
    torch.manual_seed(0)
    head = build("san", 3, initial_state=initial_state).eval()
    hidden, mask = torch.randn(B, L, H), padded_mask()
    changed = hidden.clone()
    changed[mask == 0] = torch.randn(int((mask == 0).sum()), H) * 100
    torch.testing.assert_close(head(changed, mask), head(hidden, mask), rtol=0, atol=0)
    changed[0, 1] += 1.0  # an unmasked token does count
    assert not torch.allclose(head(changed, mask)[0], head(hidden, mask)[0])


def test_prediction_keep_mask_keeps_at_least_one_step() -> None:
    torch.manual_seed(0)
    keep = prediction_keep_mask(1000, 5, 0.99)
    assert keep.dtype == torch.bool and keep.shape == (1000, 5)
    assert (keep.sum(1) >= 1).all()
    assert torch.equal(prediction_keep_mask(7, 5, 0.0), torch.ones(7, 5, dtype=torch.bool))
    # each step is kept with probability (1 - p) + p / K: 0.6 for p = 0.5, K = 5
    rate = prediction_keep_mask(20000, 5, 0.5).float().mean().item()
    assert rate == pytest.approx(0.6, abs=0.01)


def test_average_over_kept_steps() -> None:
    step_logits = torch.randn(2, 3, 4)
    keep = torch.tensor([[True, False, True], [False, True, False]])
    probs = step_logits.softmax(-1)
    expected = torch.stack([(probs[0, 0] + probs[0, 2]) / 2, probs[1, 1]]).log()
    torch.testing.assert_close(average_step_probabilities(step_logits, keep), expected)


def test_san_prediction_dropout_averages_a_nonempty_subset_of_steps() -> None:
    torch.manual_seed(0)
    head = build("san", 3, steps=4, dropout=0.0, prediction_dropout=0.7)
    hidden, mask = torch.randn(B, L, H), padded_mask()
    with torch.no_grad():
        step_probs = head.step_logits(hidden, mask).softmax(-1)
        subsets = [subset for k in range(1, 5) for subset in itertools.combinations(range(4), k)]
        seen = set()
        for _ in range(20):
            out = head.train()(hidden, mask)
            for row in range(B):
                matches = [
                    s for s in subsets if torch.allclose(out[row].exp(), step_probs[row, s].mean(0))
                ]
                assert matches, f"row {row} is not the mean of any non-empty subset of steps"
                seen.add(len(matches[0]))
        assert seen > {4}  # some steps were dropped, sometimes
        torch.testing.assert_close(head.eval()(hidden, mask), step_probs.mean(1).log())


def test_san_learns_a_separable_problem() -> None:
    torch.manual_seed(0)
    labels = torch.randint(0, 2, (32,))
    direction = torch.randn(H)
    hidden = 0.5 * torch.randn(32, L, H) + (2.0 * labels - 1.0)[:, None, None] * direction
    mask = torch.ones(32, L, dtype=torch.long)
    head = build("san", 2, steps=3)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(head(hidden, mask), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    head.eval()
    assert (head(hidden, mask).argmax(-1) == labels).all()
