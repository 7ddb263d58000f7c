"""
The chain rule: back-propagation in a two-layer network
=======================================================

Back-propagation is the multivariate chain rule applied from the output back to the
weights. We write it by hand for a small two-layer network with a squared-error loss, and check
every weight's derivative against :func:`fastcalc.gradient` of the loss as a function of all
weights at once. Then we train the network with those gradients.
"""
import matplotlib.pyplot as plt
import numpy as np

import fastcalc

rng = np.random.default_rng(0)
n_in, n_hidden = 1, 8
X = np.linspace(-2, 2, 40).reshape(-1, 1)            # 40 samples, one input
y = np.sin(1.5 * X[:, 0])                             # the target


def unpack(w):
    """All weights in one vector -> W1 (8, 1), b1 (8,), W2 (8,), b2."""
    W1 = w[:n_hidden].reshape(n_hidden, n_in)
    b1 = w[n_hidden:2 * n_hidden]
    W2 = w[2 * n_hidden:3 * n_hidden]
    return W1, b1, W2, w[3 * n_hidden]


def loss(w):
    W1, b1, W2, b2 = unpack(w)
    hidden = np.tanh(X @ W1.T + b1)                   # (40, 8)
    out = hidden @ W2 + b2                            # (40,)
    return 0.5 * np.mean((out - y) ** 2)


def backprop(w):
    """The chain rule, layer by layer, from the loss back to each weight."""
    W1, b1, W2, b2 = unpack(w)
    z = X @ W1.T + b1
    hidden = np.tanh(z)
    out = hidden @ W2 + b2
    d_out = (out - y) / len(y)                        # dL/d out
    d_W2 = hidden.T @ d_out                           # out = hidden . W2 + b2
    d_b2 = d_out.sum()
    d_hidden = np.outer(d_out, W2)                    # dL/d hidden
    d_z = d_hidden * (1 - hidden**2)                  # tanh' = 1 - tanh^2
    d_W1 = d_z.T @ X
    d_b1 = d_z.sum(axis=0)
    return np.concatenate([d_W1.ravel(), d_b1, d_W2, [d_b2]])


w = rng.normal(0, 1, 3 * n_hidden + 1)

# %%
# Check the chain rule against finite differences
# -----------------------------------------------
by_hand = backprop(w)
numeric = fastcalc.gradient(loss, w, method="richardson", full_output=True)
difference = np.abs(by_hand - numeric.df)
print(f"largest difference {difference.max():.1e}, "
      f"largest error estimate {numeric.error.max():.1e}")
assert (numeric.status == 0).all()
assert (difference <= numeric.error + 1e-15).all()   # within fastcalc's own error bound
assert fastcalc.check_grad(loss, backprop, w) < 1e-8

# %%
# Train with the back-propagated gradient
# ---------------------------------------
# Plain gradient descent with a fixed learning rate; the finite-difference check above is what
# lets us trust the gradient it follows.
history = []
for step in range(3000):
    w = w - 0.2 * backprop(w)
    history.append(loss(w))
assert history[-1] < 0.1 * history[0]

W1, b1, W2, b2 = unpack(w)
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
left.semilogy(history)
left.set_xlabel("step")
left.set_ylabel("loss")
left.set_title("Training loss")
right.plot(X[:, 0], y, "ko", ms=3, label="target sin(1.5x)")
right.plot(X[:, 0], np.tanh(X @ W1.T + b1) @ W2 + b2, "tab:blue", label="network")
right.legend(fontsize=8)
right.set_title("Fit after training")
fig.tight_layout()
