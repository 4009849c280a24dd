"""The MLP demonstration: the four ways to evaluate, in numbers."""

import pytest

from cdropout import demo


@pytest.fixture(scope="module")
def results():
    return demo.run(seed=0)


def test_classic_with_scaled_activations_equals_classic_with_folded_weights(results):
    import numpy as np

    np.testing.assert_allclose(
        results["b"]["logits"], results["c"]["logits"], rtol=1e-12, atol=1e-12
    )
    assert results["b"]["loss"] == pytest.approx(results["c"]["loss"], rel=1e-12)


def test_no_rescaling_inflates_the_mean_activation_by_one_over_keep_probability(
    results,
):
    # Srivastava et al. 2014: unscaled evaluation of a classic network feeds the next
    # layer 1/(1-p) times its training-time mean; 3% covers the sampling of the masks.
    expected = 1 / (1 - demo.P)
    d = results["d"]
    assert d["eval_mean"] / d["train_mean"] == pytest.approx(expected, rel=0.03)
    for key in "ab":
        r = results[key]
        assert r["eval_mean"] / r["train_mean"] == pytest.approx(1.0, rel=0.03)
    c = results["c"]
    assert c["effective_eval_mean"] / c["train_mean"] == pytest.approx(1.0, rel=0.03)


def test_the_networks_learn_and_the_mistake_costs(results):
    for key in "abc":
        assert results[key]["accuracy"] > 0.75, key
    assert results["d"]["loss"] > 1.5 * results["b"]["loss"]


def test_table_prints_every_case(results, capsys):
    demo.print_table(results)
    printed = capsys.readouterr().out
    for key in "abcd":
        assert f"({key})" in printed
