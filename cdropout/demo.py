"""Why dropout rescales, in numbers: a small NumPy MLP trained with dropout both ways.

A two-hidden-layer ReLU network learns a generated Gaussian-mixture classification
problem (no download) with dropout p = 0.5 after each hidden layer and plain SGD, the
dropout layers' forward and backward doing the masking. It is trained once with
inverted and once with classic dropout (same data, same initial weights), then
evaluated four ways:

  (a) inverted, evaluated as is (the identity at evaluation);
  (b) classic, activations scaled by 1-p at evaluation;
  (c) classic, weights converted once with rescale_weights, evaluated with no dropout;
  (d) classic, evaluated with no rescaling at all: the mistake.

(b) and (c) are the same network up to float rounding. (d) feeds the next layer
activations 1/(1-p) times larger on average than it saw in training (Srivastava et al.
2014, section 2), and its loss shows it.
"""

import numpy as np

from cdropout.layers import Dropout
from cdropout.rescale import rescale_weights

P = 0.5
CLASSES = 5
HIDDEN = 64


def make_data(n, rng):
    """n points of a 2-D Gaussian mixture: CLASSES overlapping blobs on a circle."""
    labels = rng.integers(0, CLASSES, n)
    angles = 2 * np.pi * labels / CLASSES
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return centres + rng.normal(0.0, 0.8, (n, 2)), labels


def init_params(rng):
    """He-initialised (W, b) pairs, W of shape (in, out), used as x @ W + b."""
    sizes = [2, HIDDEN, HIDDEN, CLASSES]
    return [
        (rng.normal(0.0, np.sqrt(2.0 / m), (m, k)), np.zeros(k))
        for m, k in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def forward(params, drops, x):
    """Logits, and what backward needs. drops[i] follows hidden layer i."""
    (W1, b1), (W2, b2), (W3, b3) = params
    z1 = x @ W1 + b1
    a1 = drops[0](np.maximum(z1, 0.0))
    z2 = a1 @ W2 + b2
    a2 = drops[1](np.maximum(z2, 0.0))
    return a2 @ W3 + b3, (x, z1, a1, z2, a2)


def backward(params, drops, cache, grad_logits):
    """Gradients of the (W, b) pairs, through the dropout layers' backward."""
    (_, _), (W2, _), (W3, _) = params
    x, z1, a1, z2, a2 = cache
    g2 = drops[1].backward(grad_logits @ W3.T) * (z2 > 0)
    g1 = drops[0].backward(g2 @ W2.T) * (z1 > 0)
    return [
        (x.T @ g1, g1.sum(0)),
        (a1.T @ g2, g2.sum(0)),
        (a2.T @ grad_logits, grad_logits.sum(0)),
    ]


def softmax_cross_entropy(logits, labels):
    """Mean loss, and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = labels.size
    grad = np.exp(log_probs)
    grad[np.arange(n), labels] -= 1.0
    return -log_probs[np.arange(n), labels].mean(), grad / n


def train(mode, data, seed, epochs=40, batch=32, lr=0.05):
    """The parameters and dropout layers of a network trained with plain SGD."""
    x, labels = data
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    drops = [Dropout(P, mode=mode, seed=seed + i) for i in range(2)]
    for _ in range(epochs):
        order = rng.permutation(labels.size)
        for start in range(0, labels.size, batch):
            idx = order[start : start + batch]
            logits, cache = forward(params, drops, x[idx])
            _, grad = softmax_cross_entropy(logits, labels[idx])
            grads = backward(params, drops, cache, grad)
            params = [
                (W - lr * gW, b - lr * gb)
                for (W, b), (gW, gb) in zip(params, grads, strict=True)
            ]
    return params, drops


def evaluate(params, drops, data):
    """Test logits, loss, accuracy and the mean first hidden activation passed on."""
    x, labels = data
    logits, (_, _, a1, _, _) = forward(params, drops, x)
    loss, _ = softmax_cross_entropy(logits, labels)
    accuracy = float(np.mean(logits.argmax(axis=1) == labels))
    return {"logits": logits, "loss": float(loss), "accuracy": accuracy, "a1": a1}


def run(seed=0, n_train=2000, n_test=4000, epochs=40):
    """Train both ways and evaluate four ways; a dict of results by case (a)-(d)."""
    rng = np.random.default_rng(seed)
    train_data, test_data = make_data(n_train, rng), make_data(n_test, rng)
    inverted, inverted_drops = train("inverted", train_data, seed + 1, epochs)
    classic, classic_drops = train("classic", train_data, seed + 1, epochs)
    # the weights that receive dropped units: W2 and W3, whose input axis is 0
    folded = [classic[0]] + [
        (rescale_weights(W, P, axis=0, from_mode="classic", to_mode="inverted"), b)
        for W, b in classic[1:]
    ]
    identity = [Dropout(P, mode="inverted", seed=0).eval() for _ in range(2)]
    trained = {
        "inverted": (inverted, inverted_drops),
        "classic": (classic, classic_drops),
    }
    cases = {  # label, training convention, evaluated with (params, dropout layers)
        "a": ("inverted, as is", "inverted", inverted, inverted_drops, 1.0),
        "b": ("classic, activations x (1-p)", "classic", classic, classic_drops, 1.0),
        "c": ("classic, weights x (1-p)", "classic", folded, identity, 1 - P),
        "d": ("classic, no rescaling", "classic", classic, identity, 1.0),
    }
    results = {}
    for key, (label, convention, params, eval_drops, weight_factor) in cases.items():
        train_params, train_drops = trained[convention]
        for layer in train_drops:
            layer.train()
        # the training-time mean on the test inputs: a fresh mask and the scale
        train_mean = float(evaluate(train_params, train_drops, test_data)["a1"].mean())
        for layer in eval_drops:
            layer.eval()
        result = evaluate(params, eval_drops, test_data)
        result.update(
            label=label,
            train_mean=train_mean,
            eval_mean=float(result["a1"].mean()),
            effective_eval_mean=float(result["a1"].mean()) * weight_factor,
        )
        results[key] = result
    return results


def print_table(results):
    print(
        f"Dropout p = {P} after each hidden layer; first hidden layer's mean output as"
    )
    print("the next layer receives it ('effective': times the factor folded into W2).")
    header = (
        f"{'':4}{'trained and evaluated':<30}{'train':>8}{'eval':>8}{'effective':>10}"
        f"{'accuracy':>10}{'loss':>8}"
    )
    print(header)
    for key, r in results.items():
        print(
            f"({key}) {r['label']:<30}{r['train_mean']:8.3f}{r['eval_mean']:8.3f}"
            f"{r['effective_eval_mean']:10.3f}{r['accuracy']:10.3f}{r['loss']:8.3f}"
        )
    ratio = results["d"]["eval_mean"] / results["d"]["train_mean"]
    print(
        f"(d) evaluation / training mean activation: {ratio:.3f}; "
        f"1/(1-p) = {1 / (1 - P):.3f}"
    )


def main():
    print_table(run())


if __name__ == "__main__":
    main()
