# %% [markdown] total_points=17
# # 1.3 Backpropagation
#
# **Backpropagation** computes the gradient of the loss with respect to every
# weight of a network in one sweep that runs *backwards*, from the loss to the
# first layer. It is the chain rule (1.1) applied systematically: the forward
# pass stores each intermediate result, and the backward pass multiplies
# derivatives from the last layer to the first, reusing each product instead of
# recomputing it. Its cost is a small multiple of one forward pass, whatever the
# number of weights: a dense layer's forward pass is one matrix product, its
# backward pass two (one for the gradient of the weights, one for the gradient
# passed on to the layer below), so about twice the forward pass. Finite
# differences (section 1.2) would need two forward passes for each weight:
# $2P$ passes for $P$ weights, millions for a network of a million weights.
# Then a **gradient descent** step moves every weight a little against its
# gradient.

# %% locked="setup"
import math

import matplotlib.pyplot as plt
import numpy as np

import dlcourse as dl
from dlcourse import data, nn, plot
from dlcourse.gradcheck import check_grad, check_vjp
from dlcourse.testing import CheckError, assert_close

# %% [markdown]
# ## A computational graph
#
# Any formula can be drawn as a graph of elementary operations. Here is one
# neuron, $y = \tanh(w x + b)$. Forward, values flow left to right. Backward,
# each operation receives the gradient of $y$ with respect to its output and
# passes on, to each input, that gradient times its **local derivative**: for
# $\tanh$, $1 - y^2$; for a sum, 1; for $w \cdot x$, $x$ towards $w$ and $w$
# towards $x$. `dlcourse` records the graph as you compute and draws it:
# each box shows a value and its gradient, each arrow the local derivative.
# `backward(retain_grads=True)` keeps the gradient of every intermediate node
# for the drawing; training leaves it off, and only the inputs keep theirs.

# %%
x = dl.Tensor(0.5, name="x")
w = dl.Tensor(-1.5, requires_grad=True, name="w")
b = dl.Tensor(0.8, requires_grad=True, name="b")
z = w * x + b
y = z.tanh()
y.name = "y"
y.backward(retain_grads=True)
print(f"dy/dw = {w.grad.item():.4f} = (1 - y^2) * x = {(1 - y.item() ** 2) * 0.5:.4f}")
plot.graph(y)

# %% [markdown]
# A value used twice (a **fan-out**) receives a gradient from each use, and
# `backward` adds them: in $d = \tanh(a c + a)$, $a$ feeds both the product and
# the sum, and its box shows its gradient as the sum of the two contributions,
# one along each path to $d$: $(1 - d^2)\,c$ through the product and
# $(1 - d^2) \cdot 1$ through the sum.

# %%
a = dl.Tensor(0.5, requires_grad=True, name="a")
c = dl.Tensor(-0.8, requires_grad=True, name="c")
d = (a * c + a).tanh()
d.backward(retain_grads=True)
plot.graph(d)

# %% [markdown]
# ## The forward pass stores intermediates
#
# For a network with one hidden ReLU layer and a softmax cross-entropy loss,
# the forward pass computes, for a batch $x$ of $N$ examples with labels $y$:
#
# $$z_1 = x W_1 + b_1,\quad h_1 = \max(z_1, 0),\quad s = h_1 W_2 + b_2,\quad
# L = -\frac{1}{N}\sum_{n} \log \operatorname{softmax}(s_n)_{y_n}.$$
#
# The backward pass will need $x$, $z_1$, $h_1$ and the softmax probabilities,
# so the forward pass keeps them.

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 3))          # N = 4 examples, 3 features
y = np.array([0, 2, 1, 2])               # their classes
W1, b1 = rng.standard_normal((3, 5)), np.zeros(5)
W2, b2 = rng.standard_normal((5, 3)), np.zeros(3)

z1 = x @ W1 + b1
h1 = np.maximum(z1, 0)
scores = h1 @ W2 + b2
shifted = scores - scores.max(axis=1, keepdims=True)   # subtracting the max keeps exp finite
probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
loss = -np.mean(np.log(probs[np.arange(4), y]))
print(f"loss = {loss:.4f}")
print("shapes:", {name: v.shape for name, v in [("z1", z1), ("h1", h1), ("scores", scores)]})

# %% [markdown]
# ## The backward pass, from the last layer to the first
#
# Now the chain rule, one layer at a time, last layer first. Each gradient has
# the shape of the thing it is the gradient of:
#
# | step | gradient | shape |
# |---|---|---|
# | loss | $\partial L/\partial s = (\text{probs} - \text{onehot}(y)) / N$ | $(N, 3)$ |
# | layer 2 | $\partial L/\partial W_2 = h_1^\top\, \partial L/\partial s$ | $(5, 3)$ |
# | | $\partial L/\partial b_2 = \sum_n \partial L/\partial s_n$ | $(3,)$ |
# | back to $h_1$ | $\partial L/\partial h_1 = \partial L/\partial s\, W_2^\top$ | $(N, 5)$ |
# | ReLU | $\partial L/\partial z_1 = \partial L/\partial h_1 \odot [z_1 > 0]$ | $(N, 5)$ |
# | layer 1 | $\partial L/\partial W_1 = x^\top\, \partial L/\partial z_1$ | $(3, 5)$ |
# | | $\partial L/\partial b_1 = \sum_n \partial L/\partial z_{1,n}$ | $(5,)$ |
#
# The gradient of the last layer's weights comes first and the first layer's
# last — hence the name.

# %%
dscores = probs.copy()
dscores[np.arange(4), y] -= 1
dscores /= 4
dW2, db2 = h1.T @ dscores, dscores.sum(axis=0)
dh1 = dscores @ W2.T
dz1 = dh1 * (z1 > 0)
dW1, db1 = x.T @ dz1, dz1.sum(axis=0)

# the same gradients from dlcourse's engine...
params = [dl.Tensor(p, requires_grad=True) for p in (W1, b1, W2, b2)]
logits = nn.linear(nn.linear(dl.Tensor(x), params[0], params[1]).relu(), params[2], params[3])
nn.cross_entropy(logits, y).backward()
for name, ours, engine in zip(["W1", "b1", "W2", "b2"], [dW1, db1, dW2, db2], params):
    print(f"d loss / d {name}: by hand == engine: {np.allclose(ours, engine.grad)}")

# ...and from central differences
def loss_of_W1(W):
    s = np.maximum(x @ W + b1, 0) @ W2 + b2
    s = s - s.max(axis=1, keepdims=True)
    return -np.mean(s[np.arange(4), y] - np.log(np.exp(s).sum(axis=1)))

print("numerical check of dW1:", check_grad(loss_of_W1, lambda W: dW1, W1))


# %% [markdown] exercise="1.3.1" id="linear_backward" points=3
# ## Exercises
#
# You will now write backpropagation yourself: the backward pass of each layer
# (exercises 1.3.1 to 1.3.3), a whole network (1.3.4), the gradient descent step
# (1.3.5), and finally a tiny autodiff engine of your own (1.3.6). Each backward function
# receives `dout`, the gradient of the loss with respect to the layer's output,
# and returns the gradients with respect to its inputs, each of the same shape
# as that input. The tests compare your gradients with numerical ones, and
# time your backward passes on inputs with thousands of numbers: a backward
# pass must cost a few forward passes, as backpropagation does, which rules
# out computing the gradient by finite differences.
#
# ### Exercise: the dense layer
#
# For `out = x @ W + b`, write `linear_backward(dout, x, W)` returning
# `(dx, dW, db)` for `x` $(N, D_{in})$, `W` $(D_{in}, D_{out})$ and `dout`
# $(N, D_{out})$.

# %% answer gradient=true
def linear_backward(dout, x, W):
    """dout (N, D_out), x (N, D_in), W (D_in, D_out)
    -> dx (N, D_in), dW (D_in, D_out), db (D_out,)."""
    ### BEGIN SOLUTION
    dx = dout @ W.T
    dW = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dW, db
    ### END SOLUTION


# %% tests
from dlcourse.testing import assert_fast, numerical_vjp


def check_linear_backward(dout, x, W, b):
    """linear_backward's shapes (with hints for misplaced transposes), then its values
    against numerical gradients of x @ W + b."""
    try:
        grads = linear_backward(dout.copy(), x.copy(), W.copy())
    except ValueError as error:  # numpy: the shapes in a matrix product do not fit
        raise CheckError(
            f"linear_backward(dout, x, W) raised ValueError: {error}\n  hint: a matrix product "
            "got shapes that do not fit. Each gradient has the shape of its variable, dx (N, D_in) "
            "and dW (D_in, D_out), and of dout (N, D_out), x (N, D_in), W (D_in, D_out) and their "
            "transposes only one product has each shape. Did you forget a transpose?"
        ) from None
    if not isinstance(grads, (tuple, list)) or len(grads) != 3:
        raise CheckError("linear_backward must return three arrays: dx, dW, db")
    for got, name, shape, hint in [
        (grads[0], "dx", x.shape, "dx has the shape of x, (N, D_in): did you forget a transpose?"),
        (
            grads[1],
            "dW",
            W.shape,
            "dW has the shape of W, (D_in, D_out): one row per input feature, "
            "one column per output, the batch summed over by the product",
        ),
        (
            grads[2],
            "db",
            b.shape,
            "db has the shape of b, (D_out,): one number per output, summed over the batch",
        ),
    ]:
        if got is not None and np.shape(got) != shape:
            raise CheckError(
                f"{name} has shape {np.shape(got)} but should have shape {shape}.\n  hint: {hint}"
            )
    dx, dW, db = grads
    square = W.shape[0] == W.shape[1]  # where dout @ W has the right shape but not the right values
    shapes = f"for x {x.shape}, W {W.shape}"
    assert_close(
        dx,
        numerical_vjp(lambda v: v @ W + b, x, dout),
        name=f"dx {shapes}",
        mistakes={
            "dx has the right shape, not the right values: did you forget a transpose?": dout @ W
        }
        if square
        else {},
    )
    assert_close(dW, numerical_vjp(lambda v: x @ v + b, W, dout), name=f"dW {shapes}")
    assert_close(
        db,
        numerical_vjp(lambda v: x @ W + v, b, dout),
        name=f"db {shapes}",
        mistakes={"sum dout over the batch, do not average it": dout.mean(axis=0)},
    )


def timed(n, d_in, d_out, seed):
    """linear_backward on more inputs than finite differences can afford; returns x, W, dout
    and the gradients."""
    rng = np.random.default_rng(seed)
    x, W = rng.standard_normal((n, d_in)), rng.standard_normal((d_in, d_out))
    dout = rng.standard_normal((n, d_out))
    grads = assert_fast(
        lambda: linear_backward(dout.copy(), x.copy(), W.copy()),
        lambda: x @ W,
        name=f"linear_backward for x {x.shape}, W {W.shape}",
        elements=x.size + W.size + d_out,
    )
    return x, W, dout, grads


rng = np.random.default_rng(0)
x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
check_linear_backward(rng.standard_normal((4, 2)), x, W, b)
x, W, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 4)), rng.standard_normal(4)
check_linear_backward(rng.standard_normal((3, 4)), x, W, b)
timed(16, 128, 128, seed=1)
print("linear_backward: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1301)
for n, d_in, d_out in [(1, 1, 1), (7, 5, 3), (16, 2, 9), (5, 4, 4)]:
    x, W, b = (
        rng.standard_normal((n, d_in)),
        rng.standard_normal((d_in, d_out)),
        rng.standard_normal(d_out),
    )
    check_linear_backward(rng.standard_normal((n, d_out)), x, W, b)
# finite differences would need 2 x 393,728 forward passes: far beyond the cell's time limit
x, W, dout, (dx, dW, db) = timed(256, 512, 512, seed=1311)
assert_close(dx, dout @ W.T, name="dx for x (256, 512), W (512, 512)")
assert_close(dW, x.T @ dout, name="dW for x (256, 512), W (512, 512)")
assert_close(db, dout.sum(axis=0), name="db for x (256, 512), W (512, 512)")
### END HIDDEN TESTS

# %% [markdown] appendix
# Each output $o_{nj} = \sum_i x_{ni} W_{ij} + b_j$. Its derivative with
# respect to $x_{ni}$ is $W_{ij}$, so $dx_{ni} = \sum_j dout_{nj} W_{ij}$,
# that is `dout @ W.T`; with respect to $W_{ij}$ it is $x_{ni}$ for every
# example, so the contributions add up over the batch: `x.T @ dout`; and the
# bias touches every example with derivative 1: `dout.sum(axis=0)`. Each
# result has the shape of its variable, which is a quick check on the
# transposes.

# %% [markdown] exercise="1.3.2" id="activation_backward" points=2
# ### Exercise: backward through activations
#
# Write `relu_backward(dout, z)` and `sigmoid_backward(dout, z)`: given the
# gradient `dout` with respect to the activation's output and the
# pre-activation `z` (same shape), return the gradient with respect to `z`.
# The ReLU has no derivative at exactly 0, so the tests keep `z` away from it:
# a mask `z > 0` or `z >= 0` is equally right.

# %% answer gradient=true
def relu_backward(dout, z):
    """Gradient through out = max(z, 0): same shape as z."""
    ### BEGIN SOLUTION
    return dout * (z > 0)
    ### END SOLUTION


def sigmoid_backward(dout, z):
    """Gradient through out = sigmoid(z): same shape as z."""
    ### BEGIN SOLUTION
    s = 0.5 * (1.0 + np.tanh(0.5 * z))
    return dout * s * (1.0 - s)
    ### END SOLUTION


# %% tests
from dlcourse.testing import numerical_vjp


def check_activation_backward(dout, z):
    """relu_backward and sigmoid_backward against numerical gradients of the activations."""
    sigma = lambda u: 1 / (1 + np.exp(-u))  # the forward pass (these z do not overflow it)
    assert_close(
        relu_backward(dout.copy(), z.copy()),
        numerical_vjp(lambda u: np.maximum(u, 0), z, dout),
        name=f"relu_backward(dout, z) for z of shape {z.shape}",
        mistakes={
            "multiply dout by the mask z > 0: no gradient flows where the ReLU is off": dout,
            "multiply the mask z > 0 by dout, the gradient arriving from above": (z > 0) * 1.0,
        },
    )
    assert_close(
        sigmoid_backward(dout.copy(), z.copy()),
        numerical_vjp(sigma, z, dout),
        name=f"sigmoid_backward(dout, z) for z of shape {z.shape}",
        mistakes={
            "sigmoid'(z) = s (1 - s) with s = sigmoid(z), evaluated at z": dout * z * (1 - z),
            "multiply sigmoid'(z) by dout, the gradient arriving from above": sigma(z)
            * (1 - sigma(z)),
        },
    )


check_activation_backward(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[-1.0, 0.5], [2.0, -0.3]]))
rng = np.random.default_rng(0)
z = rng.standard_normal((2, 3, 4))
z[np.abs(z) < 1e-3] = 0.5  # away from the kink of the ReLU, where no derivative exists
check_activation_backward(rng.standard_normal((2, 3, 4)), z)
print("relu_backward and sigmoid_backward: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1302)
for shape in [(5,), (4, 3), (2, 3, 4)]:
    z = rng.standard_normal(shape) * 3
    z[np.abs(z) < 1e-3] = 0.5
    check_activation_backward(rng.standard_normal(shape), z)
### END HIDDEN TESTS

# %% [markdown] appendix
# Both activations act elementwise, so the chain rule is an elementwise
# product: `dout` times the local derivative at `z`. ReLU's slope is 1 where
# $z > 0$ and 0 elsewhere (the mask); the sigmoid's is $\sigma(z)(1 - \sigma(z))$,
# computed here without overflow.

# %% [markdown] exercise="1.3.3" id="softmax_cross_entropy" points=3
# ### Exercise: softmax cross-entropy
#
# Write `softmax_cross_entropy(logits, y)` returning `(loss, dlogits)` for
# `logits` $(N, C)$ and integer labels `y` $(N,)$: the **mean** over the batch
# of $-\log \operatorname{softmax}(\text{logits}_n)_{y_n}$, and its gradient
# with respect to the logits, $(\operatorname{softmax}(\text{logits}) -
# \text{onehot}(y)) / N$. It must stay finite and silent for logits in the
# thousands. Subtracting each row's maximum $m$ before exponentiating keeps
# every $e^{s - m}$ at most 1, but is not enough on its own: when the true
# class's logit is thousands below the largest, its probability underflows
# to 0, and $\log 0 = -\infty$. Compute the log-probabilities directly, with
# the **log-sum-exp** trick:
# $\log \operatorname{softmax}(s)_y = s_y - m - \log \sum_j e^{s_j - m}$.
# The tests try such a row. They also time the function on a large batch, where
# a gradient computed by finite differences would take far too long.

# %% answer gradient=true
def softmax_cross_entropy(logits, y):
    """logits (N, C), y (N,) ints -> loss (a float), dlogits (N, C)."""
    ### BEGIN SOLUTION
    n = len(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(n), y].mean()
    dlogits = np.exp(log_probs)
    dlogits[np.arange(n), y] -= 1
    return loss, dlogits / n
    ### END SOLUTION


# %% tests
from dlcourse.testing import assert_fast

logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
y = np.array([0, 2])
loss, dlogits = softmax_cross_entropy(logits.copy(), y.copy())
assert_close(
    loss,
    1.4185397696491855,
    name="the loss",
    mistakes={"average over the batch (mean), do not sum": 2.837079539298371},
)
check_grad(
    lambda L: softmax_cross_entropy(L, y.copy())[0],
    lambda L: softmax_cross_entropy(L, y.copy())[1],
    logits,
    name="logits",
)


def without_warnings(logits, y):
    """softmax_cross_entropy(logits, y), failing with a hint if numpy warns."""
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            return softmax_cross_entropy(logits.copy(), y.copy())
    except FloatingPointError as error:
        if "divide" in str(error):  # the log of a probability that underflowed to 0
            hint = (
                "a probability underflowed to 0 and its log is -inf. Take the log-probabilities "
                "directly with log-sum-exp, shifted - log(sum(exp(shifted))) with shifted = "
                "logits minus each row's maximum, instead of the log of the probabilities"
            )
        else:
            hint = (
                "exp overflowed or inf - inf appeared: subtract each row's maximum from the logits "
                "before exp, then take log-probabilities with log-sum-exp"
            )
        raise CheckError(
            f"softmax_cross_entropy warns for logits in the thousands: {error}.\n  hint: {hint}"
        ) from None


def timed(n, c, seed):
    """softmax_cross_entropy on more logits than finite differences can afford."""
    rng = np.random.default_rng(seed)
    logits, y = rng.standard_normal((n, c)) * 3, rng.integers(0, c, n)
    result = assert_fast(
        lambda: softmax_cross_entropy(logits.copy(), y.copy()),
        lambda: np.exp(logits).sum(axis=1),
        name=f"softmax_cross_entropy for logits of shape {(n, c)}",
        elements=n * c,
    )
    return logits, y, result


# row 1's true class (0) is 10,000 below the largest logit: its probability underflows to 0
loss, dlogits = without_warnings(
    np.array([[1000.0, -1000.0, 999.0], [-5000.0, 5000.0, 0.0]]), np.array([2, 0])
)
assert_close(loss, 5000.65663084376, name="the loss for logits in the thousands")
q = 0.36552928931500245  # sigmoid(1) / N: the weight of logit 1000 against 999, over N = 2
assert_close(
    dlogits,
    [[q, 0.0, -q], [-0.5, 0.5, 0.0]],
    name="dlogits for logits in the thousands",
    atol=1e-12,
)
timed(128, 64, seed=1)
print("softmax_cross_entropy: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1303)
for n, c in [(1, 2), (8, 5), (32, 10)]:
    logits, y = rng.standard_normal((n, c)) * 3, rng.integers(0, c, n)
    expected = nn.cross_entropy(dl.Tensor(logits), y).item()
    loss, _ = softmax_cross_entropy(logits.copy(), y.copy())
    assert_close(
        loss,
        expected,
        name=f"the loss for logits of shape {(n, c)}",
        mistakes={"average over the batch (mean), do not sum": expected * n},
    )
    check_grad(
        lambda L: softmax_cross_entropy(L, y.copy())[0],
        lambda L: softmax_cross_entropy(L, y.copy())[1],
        logits,
        name=f"logits of shape {(n, c)}",
    )
big, y = rng.standard_normal((6, 4)) * 3000, rng.integers(0, 4, 6)
shifted = big - big.max(axis=1, keepdims=True)
log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
loss, dlogits = without_warnings(big, y)
assert_close(
    loss, -log_probs[np.arange(6), y].mean(), name="the loss for random logits in the thousands"
)
assert_close(
    dlogits,
    (np.exp(log_probs) - np.eye(4)[y]) / 6,
    atol=1e-12,
    name="dlogits for random logits in the thousands",
)
# finite differences would need 2 x 200,000 evaluations of the loss
logits, y, (loss, dlogits) = timed(2000, 100, seed=1313)
shifted = logits - logits.max(axis=1, keepdims=True)
log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
assert_close(
    loss, -log_probs[np.arange(2000), y].mean(), name="the loss for logits of shape (2000, 100)"
)
assert_close(
    dlogits,
    (np.exp(log_probs) - np.eye(100)[y]) / 2000,
    atol=1e-12,
    name="dlogits for logits of shape (2000, 100)",
)
### END HIDDEN TESTS

# %% [markdown] appendix
# Subtracting each row's maximum does not change the softmax but keeps every
# exponent at most 0. Computing log-probabilities as `shifted - log(sum(exp(shifted)))`
# avoids taking the log of a probability that underflowed to 0. The gradient of
# $-\log \operatorname{softmax}(s)_y$ with respect to $s$ is
# $\operatorname{softmax}(s) - \text{onehot}(y)$; averaging over $N$ examples
# divides it by $N$.

# %% [markdown] exercise="1.3.4" id="mlp_loss_and_grads" points=4
# ### Exercise: backpropagation through a deep network
#
# Write `mlp_loss_and_grads(x, y, params)` for a network of any depth (the tests
# try one, two and three layers, and more): `params`
# is a list of `(W, b)` pairs; every layer but the last is followed by a ReLU;
# the loss is the softmax cross-entropy of the last layer's output against the
# integer labels `y`. Return `(loss, grads)` where `grads` is a list of
# `(dW, db)` pairs matching `params`. Store what the backward pass needs during
# the forward pass, then walk the layers in reverse. You may call your functions
# from exercises 1.3.1 to 1.3.3 or write the steps out; the answer in Appendix A writes
# them out, so that it stands on its own.

# %% answer gradient=true
def mlp_loss_and_grads(x, y, params):
    """x (N, D_0), y (N,) ints, params [(W, b), ...] -> loss, [(dW, db), ...]."""
    ### BEGIN SOLUTION
    inputs, pre_activations = [], []
    h = x
    for i, (W, b) in enumerate(params):
        inputs.append(h)
        z = h @ W + b
        if i < len(params) - 1:
            pre_activations.append(z)
            h = np.maximum(z, 0.0)
        else:
            h = z
    # softmax cross-entropy and its gradient with respect to the logits h
    n = len(h)
    shifted = h - h.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(n), y].mean()
    dout = np.exp(log_probs)
    dout[np.arange(n), y] -= 1
    dout /= n
    grads = [None] * len(params)
    for i in reversed(range(len(params))):
        if i < len(params) - 1:
            dout = dout * (pre_activations[i] > 0)  # back through the ReLU
        W = params[i][0]
        grads[i] = (inputs[i].T @ dout, dout.sum(axis=0))
        dout = dout @ W.T  # into the layer below
    return loss, grads
    ### END SOLUTION


# %% tests
from dlcourse.testing import assert_fast, numerical_grad


def fresh(params):  # copies for every call: the answer may change its arguments
    return [(W.copy(), b.copy()) for W, b in params]


def between(i, layers):
    """Where to look when layer i + 1 is the first wrong layer in backward order."""
    if i == layers - 1:
        return (
            "the last layer's gradients are the first that backpropagation computes: look at "
            "the gradient of the loss with respect to the logits (exercise 1.3.3), then at the "
            "last layer's dW and db (exercise 1.3.1), whose input is the last hidden layer's "
            "output (x for one layer)"
        )
    return (
        f"the layers after layer {i + 1} are right, so the gradient went wrong on its way from "
        f"layer {i + 2} down to layer {i + 1}: look at the dx that layer {i + 2} passes down "
        f"(exercise 1.3.1), then at the ReLU after layer {i + 1}, whose mask (z > 0, where z is "
        f"layer {i + 1}'s pre-activation) must multiply the gradient"
    )


ANY_DEPTH = (
    "the network may have any number of layers (the tests try one, two and three): loop "
    "over params forward, then back over them in reverse"
)


def reference_loss(x, y, params):
    """The network's loss computed by the test itself, in dlcourse's engine."""
    h = dl.Tensor(x)
    for i, (W, b) in enumerate(params):
        h = nn.linear(h, W, b)
        h = h.relu() if i < len(params) - 1 else h
    return nn.cross_entropy(h, y).item()


def check_network(x, y, params, loss):
    """mlp_loss_and_grads: its loss against the expected one, then each layer's gradients against
    numerical gradients of the network's loss, from the last layer to the first
    (backpropagation's order)."""
    layers = len(params)
    try:
        got_loss, grads = mlp_loss_and_grads(x.copy(), y.copy(), fresh(params))
    except (IndexError, ValueError) as error:
        raise CheckError(
            f"mlp_loss_and_grads for a network of {layers} layer(s) raised "
            f"{type(error).__name__}: {error}\n  hint: {ANY_DEPTH}"
        ) from None
    if not isinstance(grads, (list, tuple)) or len(grads) != layers:
        got = f"{len(grads)} entries" if isinstance(grads, (list, tuple)) else type(grads).__name__
        raise CheckError(
            f"grads is {got} for a network of {layers} layers: a list of one "
            f"(dW, db) pair per layer, in the order of params.\n  hint: {ANY_DEPTH}"
        )
    assert_close(got_loss, loss, name=f"the loss of a network of {layers} layers")
    for i in reversed(range(layers)):
        for k, what in enumerate(["dW", "db"]):

            def loss_of(v, i=i, k=k):
                changed = fresh(params)
                changed[i] = (v, changed[i][1]) if k == 0 else (changed[i][0], v)
                return reference_loss(x, y, changed)

            try:
                assert_close(
                    grads[i][k],
                    numerical_grad(loss_of, params[i][k]),
                    atol=1e-7,
                    name=f"{what} of layer {i + 1} of {layers}",
                )
            except CheckError as error:
                raise CheckError(f"{error}\n  hint: {between(i, layers)}") from None


def network(sizes, n, seed):
    rng = np.random.default_rng(seed)
    params = [
        (rng.standard_normal((m, k)) * np.sqrt(2 / m), rng.standard_normal(k) * 0.1)
        for m, k in zip(sizes, sizes[1:])
    ]
    return rng.standard_normal((n, sizes[0])), rng.integers(0, sizes[-1], n), params


def timed(sizes, n, seed):
    """mlp_loss_and_grads on more weights than finite differences can afford."""
    x, y, params = network(sizes, n, seed)
    weights = sum(W.size + b.size for W, b in params)
    result = assert_fast(
        lambda: mlp_loss_and_grads(x.copy(), y.copy(), fresh(params)),
        lambda: [x @ W for W, _ in params],
        name=f"mlp_loss_and_grads for layer sizes {sizes} and {n} examples",
        elements=weights,
    )
    return x, y, params, result


for sizes, loss in [
    ([3, 4], 1.234236819598169),
    ([3, 5, 4], 1.3296166108233596),
    ([3, 5, 5, 4], 2.00147778097184),
]:
    check_network(*network(sizes, 6, seed=0), loss)
timed([48, 48, 48, 10], 48, seed=1)
print("mlp_loss_and_grads: visible tests passed")


### BEGIN HIDDEN TESTS
def engine_loss_and_grads(x, y, params):
    """The same network in dlcourse's engine, for comparison."""
    tensors = [
        (dl.Tensor(W, requires_grad=True), dl.Tensor(b, requires_grad=True)) for W, b in params
    ]
    h = dl.Tensor(x)
    for i, (W, b) in enumerate(tensors):
        h = nn.linear(h, W, b)
        h = h.relu() if i < len(tensors) - 1 else h
    loss = nn.cross_entropy(h, y)
    loss.backward()
    return loss.item(), [(W.grad, b.grad) for W, b in tensors]


for sizes, n in [([4, 3], 5), ([2, 8, 8, 3], 10), ([5, 6, 6, 6, 6, 6, 6, 2], 7)]:
    x, y, params = network(sizes, n, seed=1304)
    check_network(x, y, params, engine_loss_and_grads(x, y, params)[0])
# finite differences would need 2 x 134,666 forward passes
x, y, params, (loss, grads) = timed([256, 256, 256, 10], 256, seed=1314)
expected_loss, expected = engine_loss_and_grads(x, y, params)
assert_close(loss, expected_loss, name="the loss for layer sizes [256, 256, 256, 10]")
assert isinstance(grads, (list, tuple)) and len(grads) == 3, "grads: one (dW, db) pair per layer"
for i, ((dW, db), (eW, eb)) in enumerate(zip(grads, expected, strict=True)):
    assert_close(dW, eW, name=f"dW of layer {i + 1} for layer sizes [256, 256, 256, 10]", atol=1e-8)
    assert_close(db, eb, name=f"db of layer {i + 1} for layer sizes [256, 256, 256, 10]", atol=1e-8)
### END HIDDEN TESTS

# %% [markdown] appendix
# The forward loop stores each layer's input (needed for `dW`) and each hidden
# pre-activation (needed for the ReLU mask). The backward loop starts from the
# loss's gradient and walks the layers in reverse: through the ReLU (except
# after the last layer), then through the dense layer, whose `dx` becomes the
# `dout` of the layer below. Every step is one application of the chain rule.

# %% [markdown] exercise="1.3.5" id="sgd_step" points=1
# ### Exercise: a gradient descent step
#
# Write `sgd_step(params, grads, lr)` returning the list of updated pairs
# $(W - \eta\, \partial L/\partial W,\ b - \eta\, \partial L/\partial b)$ with
# learning rate $\eta$ = `lr`.

# %% answer
def sgd_step(params, grads, lr):
    """params [(W, b), ...], grads [(dW, db), ...] -> [(W - lr dW, b - lr db), ...]."""
    ### BEGIN SOLUTION
    return [(W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads)]
    ### END SOLUTION


# %% tests
params = [(np.array([[1.0, 2.0]]), np.array([0.5, 0.0]))]
grads = [(np.array([[0.5, -1.0]]), np.array([1.0, 2.0]))]
(W, b), = sgd_step(params, grads, lr=0.1)
assert_close(W, [[0.95, 2.1]], name="the updated W",
             mistakes={"step against the gradient: W - lr * dW": [[1.05, 1.9]]})
assert_close(b, [0.4, -0.2], name="the updated b")
print("sgd_step: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1305)
shapes = [(3, 4), (4, 2), (2, 2)]
params = [(rng.standard_normal(s), rng.standard_normal(s[1])) for s in shapes]
grads = [(rng.standard_normal(s), rng.standard_normal(s[1])) for s in shapes]
expected = [(W - 0.03 * dW, b - 0.03 * db) for (W, b), (dW, db) in zip(params, grads)]
updated = sgd_step([(W.copy(), b.copy()) for W, b in params], grads, 0.03)
assert isinstance(updated, (list, tuple)) and len(updated) == 3, "sgd_step: a list of 3 pairs"
for i, ((W, b), (eW, eb)) in enumerate(zip(updated, expected, strict=True)):
    assert_close(W, eW, name=f"the updated W of layer {i + 1}")
    assert_close(b, eb, name=f"the updated b of layer {i + 1}")
### END HIDDEN TESTS

# %% [markdown] appendix
# The gradient points in the direction in which the loss grows fastest, so a
# small step against it, scaled by the learning rate, lowers the loss. A new
# list is returned and the arrays passed in are left unchanged.

# %% [markdown] exercise="1.3.6" id="value" points=4
# ### Exercise: an autodiff engine of your own
#
# `Value` below is a miniature of `dlcourse.Tensor` for single numbers: each
# operation creates a new `Value` that remembers its inputs (`_children`) and a
# function `_backward` that adds, to each input's `.grad`, the output's `.grad`
# times the local derivative. Addition is written for you. Complete:
#
# 1. the local backward of `*` (for $c = a b$: $\partial c/\partial a = b$ and
#    $\partial c/\partial b = a$);
# 2. the local backward of `tanh` (for $t = \tanh a$: $\partial t/\partial a = 1 - t^2$);
# 3. `backward()`: put every `Value` this one depends on in **topological
#    order** (each after all of its inputs), set this one's `.grad` to 1, and call
#    `_backward` on each in reverse order. An order that only happens to work for
#    the order in which you push a node's inputs is not enough: the tests build
#    the same graph with its operands both ways round.
#
# Use `+=` so that a value used twice receives both contributions. Build the
# order **without recursion**, with an explicit stack: the tests backpropagate
# through a chain of several thousand operations, deeper than Python's
# recursion limit (about 1,000).

# %% answer gradient=true
class Value:
    """A number that remembers how it was computed."""

    def __init__(self, data, _children=()):
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._children = _children

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def _backward():
            ### BEGIN SOLUTION
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    __rmul__ = __mul__

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,))

        def _backward():
            ### BEGIN SOLUTION
            self.grad += (1 - t * t) * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def backward(self):
        """Fill in .grad = d self / d v for every Value v that self depends on."""
        ### BEGIN SOLUTION
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
            elif id(node) not in visited:
                visited.add(id(node))
                stack.append((node, True))
                stack.extend((child, False) for child in node._children)
        self.grad = 1.0
        for node in reversed(order):
            node._backward()
        ### END SOLUTION

    def __repr__(self):
        return f"Value(data={self.data:.4g}, grad={self.grad:.4g})"


# %% tests
def numerical(f, xs, i, h=1e-6):
    """The central difference of f(*xs) with respect to xs[i]."""
    up, down = list(xs), list(xs)
    up[i] += h
    down[i] -= h
    return (f(*up) - f(*down)) / (2 * h)


a, b = Value(0.5), Value(-0.8)
c = a * b + a  # a is used twice
d = c.tanh()
d.backward()
t = math.tanh(0.5 * -0.8 + 0.5)
in_math = lambda a, b: math.tanh(a * b + a)
assert_close(
    a.grad,
    numerical(in_math, [0.5, -0.8], 0),
    name="a.grad for tanh(a*b + a)",
    mistakes={"accumulate with +=: a is used twice": (1 - t * t) * -0.8},
)
assert_close(b.grad, numerical(in_math, [0.5, -0.8], 1), name="b.grad for tanh(a*b + a)")

ORDER = (
    "a node's _backward ran before all its consumers had added into its grad: call _backward "
    "in reverse topological order (each node after every node that was computed from it). An "
    "order in which each node comes before its inputs only because of the order you pushed "
    "them (a depth-first preorder) is not one: the same graph written with its operands "
    "swapped breaks it"
)


def with_order_hint(check):
    """Run check(); a failure gains ORDER's hint (the local derivatives passed above)."""
    try:
        check()
    except CheckError as error:
        raise CheckError(f"{error}\n  hint: {ORDER}") from None


# s reaches out directly and through two tanh: paths of different lengths, in either operand order
for name, build, in_math in [
    ("s + tanh(tanh(s))", lambda s: s + s.tanh().tanh(), lambda s: s + math.tanh(math.tanh(s))),
    ("tanh(tanh(s)) + s", lambda s: s.tanh().tanh() + s, lambda s: math.tanh(math.tanh(s)) + s),
]:
    p = Value(0.7)
    build(p * p).backward()
    expected = numerical(lambda p: in_math(p * p), [0.7], 0)
    with_order_hint(
        lambda: assert_close(p.grad, expected, name=f"p.grad for out = {name}, s = p*p")
    )

x = Value(0.3)
y = x
for _ in range(1500):  # 3,000 operations, three times Python's recursion limit
    y = y * 1.0 + 0.0
try:
    y.backward()
except RecursionError:
    raise CheckError(
        "backward() hit Python's recursion limit on a chain of 3,000 operations."
        "\n  hint: build the topological order with an explicit stack (a list you push to "
        "and pop from), not recursion"
    ) from None
assert_close(x.grad, 1.0, name="x.grad at the start of a chain of 3,000 operations")
print("Value: visible tests passed")


### BEGIN HIDDEN TESTS
def expression(p, q, r, lib):
    tanh = (lambda v: v.tanh()) if lib == "value" else math.tanh
    s = p * q + r * p
    u = tanh(s) * (q + tanh(r)) + s * s
    return u * p + 1.5


rng = np.random.default_rng(1306)
for _ in range(3):
    xs = [float(v) for v in rng.uniform(-1.2, 1.2, 3)]
    vs = [Value(v) for v in xs]
    expression(*vs, "value").backward()
    for i, name in enumerate("pqr"):
        assert_close(
            vs[i].grad,
            numerical(lambda *u: expression(*u, "math"), xs, i),
            atol=1e-6,
            name=f"{name}.grad in a graph where values are reused",
        )


def uneven(p, q, lib):  # p and q reach the output along paths of different lengths
    tanh = (lambda v: v.tanh()) if lib == "value" else math.tanh
    s = p * q
    return s + tanh(tanh(s)) * q + tanh(tanh(tanh(s * p)))


for _ in range(3):
    xs = [float(v) for v in rng.uniform(-1.2, 1.2, 2)]
    vs = [Value(v) for v in xs]
    uneven(*vs, "value").backward()
    for i, name in enumerate("pq"):
        with_order_hint(
            lambda: assert_close(
                vs[i].grad,
                numerical(lambda *u: uneven(*u, "math"), xs, i),
                atol=1e-6,
                name=f"{name}.grad in a graph with paths of different lengths",
            )
        )
### END HIDDEN TESTS

# %% [markdown] appendix
# The local derivatives follow from $\partial(ab)/\partial a = b$ and
# $\frac{d}{da}\tanh a = 1 - \tanh^2 a$, each multiplied by `out.grad` (the
# chain rule) and added with `+=` so that a value used several times collects
# every contribution. `backward` builds a topological order with an explicit
# stack: an entry `(node, False)` means "visit node", `(node, True)` means
# "all of node's children are in the order, so append it". Walking that order
# in reverse guarantees that a node's `.grad` is complete before its
# `_backward` passes it on, and no Python recursion is used, so chains of any
# length work.

# %% [markdown]
# ## Training with your own gradients
#
# With your backpropagation and gradient descent step, a network learns. The
# cell below trains a two-hidden-layer network on the spirals with full-batch
# gradient descent, using only your functions, and plots the loss.
#
# Every step uses the whole data set, so nothing random shakes the curve: with
# learning rate 0.3 the loss falls at every step. The learning rate is a
# compromise. Change it to 0.5 and the curve, faster overall, jumps up a few
# times early on: a step overshoots the bottom of a steep, narrow valley of the
# loss and lands higher up the far side. At 5, the first steps throw the
# weights so far that the loss never recovers.

# %%
X, labels = data.spirals(n_per_class=80, n_classes=3, seed=1)
rng = np.random.default_rng(0)
sizes = [2, 48, 48, 3]
weights = [
    (rng.standard_normal((m, n)) * np.sqrt(2 / m), np.zeros(n)) for m, n in zip(sizes, sizes[1:])
]
try:
    losses = []
    for _ in range(1500):
        loss, grads = mlp_loss_and_grads(X, labels, weights)
        weights = sgd_step(weights, grads, lr=0.3)
        losses.append(loss)
except NotImplementedError:
    print("Complete exercises 1.3.1 to 1.3.5 first: this cell trains with your functions.")
else:
    scores, dead = X, []
    for i, (W, b) in enumerate(weights):
        scores = scores @ W + b
        if i < len(weights) - 1:
            dead.append(
                f"{np.sum(np.all(scores <= 0, axis=0))} of {scores.shape[1]}"
            )  # never active
            scores = np.maximum(scores, 0)
    print(
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; "
        f"training accuracy {np.mean(scores.argmax(axis=1) == labels):.2f}"
    )
    print("dead ReLUs (active for no training example) in each hidden layer:", ", ".join(dead))
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.semilogy(losses)
    ax.set(xlabel="gradient descent step", ylabel="loss", title="training with your backprop")
    ax.grid(alpha=0.3, which="both")

# %% [markdown]
# ## Vanishing and exploding gradients, measured
#
# Section 1.1 watched activations vanish or explode through 50 layers; the
# gradients do the same on the way back, because the backward pass multiplies
# by the same weight matrices (transposed) and by the activations' slopes. The
# cell below feeds the spirals to a network of ten hidden layers of 64 units
# and plots the size (the norm) of each layer's weight gradient $\partial
# L/\partial W_l$, computed by **your** `mlp_loss_and_grads`, for three
# initialisations of the ReLU network: He's, and standard deviations too small
# and too large. With He's, every layer receives a gradient of about the same
# size, so all layers learn at the same pace. Too small, and the gradients
# vanish; too large, and they explode, growing towards the first layers.
#
# Your function has ReLUs built in, so the fourth line, for the same network
# with sigmoids (and Glorot's initialisation, the one meant for sigmoids),
# comes from `dlcourse`'s engine. Its gradients shrink by a factor of about
# four per layer towards the input: the sigmoid's slope is at most 1/4
# (section 1.2), and the first layers barely learn. That is the vanishing
# gradient problem which ReLUs, with their slope of exactly 1 where active,
# largely removed.
#
# ReLUs have a failure of their own. A unit whose pre-activation is negative
# for every example passes no gradient back (its mask is 0 everywhere), so its
# weights never change again: a **dead ReLU**. A large learning rate or a
# strongly negative bias can kill many units. The training cell above counted
# them in its network: a few units of the second hidden layer died during
# training, and learn nothing more.

# %%
sizes = [2] + [64] * 10 + [3]
inits = {
    "ReLU, He: sqrt(2/fan_in)": lambda m: np.sqrt(2 / m),
    "ReLU, std 0.05 (too small)": lambda m: 0.05,
    "ReLU, std 0.3 (too large)": lambda m: 0.3,
}
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
try:
    for name, std in inits.items():
        rng = np.random.default_rng(0)
        init = [
            (rng.standard_normal((m, n)) * std(m), np.zeros(n)) for m, n in zip(sizes, sizes[1:])
        ]
        _, grads = mlp_loss_and_grads(X, labels, init)
        ax.semilogy(
            range(1, len(sizes)), [np.linalg.norm(dW) for dW, _ in grads], "o-", ms=4, label=name
        )
except NotImplementedError:
    print(
        "Complete exercise 1.3.4 first: this cell measures the gradients of your "
        "mlp_loss_and_grads."
    )
sigmoid_net = nn.MLP(sizes, activation="sigmoid", init="xavier", rng=0)
nn.cross_entropy(sigmoid_net(dl.Tensor(X)), labels).backward()
norms = [np.linalg.norm(layer.weight.grad) for layer in sigmoid_net if isinstance(layer, nn.Linear)]
ax.semilogy(
    range(1, len(sizes)),
    norms,
    "k--",
    marker="s",
    ms=4,
    label="sigmoid, Glorot (dlcourse's engine)",
)
ax.set(
    xlabel="layer (1 = first, next to the input)",
    ylabel=r"$\|\partial L / \partial W\|$",
    title="the gradient each layer receives at initialisation",
)
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
