# %% [markdown] total_points=7
# # 1.1 Deep Learning
#
# **Deep learning** is one branch of **machine learning**, the part of computing
# in which a program is not given rules by its author but adjusts itself to
# examples. In deep learning, the programs that adjust themselves are
# **artificial neural networks**. They owe the name to the brain: a unit of a
# network, like a nerve cell, adds up signals arriving from other units, each
# weighted by the strength of its connection, and passes a response on. The likeness is loose
# (nothing below needs any biology), but it explains the vocabulary of neurons, connections
# and activations.
#
# A neural network is a chain of simple functions called **layers**. Each layer
# takes a vector of numbers, mixes it linearly, and bends the result with a
# fixed nonlinear function. One or two such layers make a *shallow* network;
# deep learning stacks tens or hundreds of them, so that each layer can build
# on what the previous one extracted: edges, then shapes, then objects, in the
# classic picture of a network that looks at images.
#
# In this notebook you will see what a single layer computes, why the bending
# (the nonlinearity) is essential, train a deep network on data no straight line
# can separate, watch its layers pull the classes apart, and find out why deep
# networks need careful initialisation. The exercises at the end ask you to
# write the forward pass of a deep network yourself, in plain numpy.

# %% locked="setup"
import matplotlib.pyplot as plt
import numpy as np

import dlcourse as dl
from dlcourse import data, nn, optim, plot
from dlcourse.testing import CheckError, assert_close

# %% [markdown]
# ## What a layer computes
#
# A **dense layer** (also *fully connected* or *linear* layer) maps a batch of
# inputs $x$, one example per row, to
#
# $$h = \phi(x W + b)$$
#
# where $W$ holds one column of weights per output unit, $b$ is a bias per
# unit, and $\phi$ is the **activation function**, applied elementwise. With
# $N$ examples of $D_{in}$ features, $x$ has shape $(N, D_{in})$, $W$ has shape
# $(D_{in}, D_{out})$, $b$ has shape $(D_{out},)$ and $h$ has shape
# $(N, D_{out})$. The most common activation today is the **ReLU**,
# $\phi(z) = \max(z, 0)$.

# %%
layer = nn.Linear(2, 3, rng=0)
x = np.array([[1.0, 2.0], [-1.0, 0.5]])  # two examples, two features each
z = layer(x)                            # x @ W + b
h = z.relu()
print("W =\n", layer.weight.data.round(3))
print("z =\n", z.data.round(3))
print("h = relu(z) =\n", h.data.round(3))

# %% [markdown]
# ## Why nonlinearity matters
#
# Without $\phi$, two layers collapse into one:
# $(xW_1 + b_1)W_2 + b_2 = x(W_1W_2) + (b_1W_2 + b_2)$,
# which is again a single linear map. However many linear layers you stack, the
# network can only draw straight decision boundaries. The **XOR** problem below
# (label 1 where the two coordinates have different signs) has no straight
# boundary, so a linear model is stuck near chance, while one hidden ReLU layer
# solves it.
#
# Both models are *trained*: their weights start at random and are adjusted,
# over and over, to make a **loss** smaller. The loss (or **loss function**) is
# one number that says how wrong the network's outputs are on the training
# examples; here it is the cross-entropy, which section 1.3 defines, small when
# the network gives the right class a high probability. Each step of training
# moves every weight a little in the direction that lowers the loss, the
# direction given by the loss's gradient (**gradient descent**, section 1.3;
# computing that gradient is what sections 1.2 and 1.3 are about). `dl.train.fit`
# takes those steps with the **Adam** optimiser, a widely used variant of
# gradient descent that adapts the step size of each weight to the size of its
# recent gradients.

# %%
W1, W2 = np.random.default_rng(1).standard_normal((2, 2, 2))
print("two linear layers == one linear layer:", np.allclose((x @ W1) @ W2, x @ (W1 @ W2)))

X, y = data.xor(n=200, seed=0)
linear = nn.MLP([2, 2], rng=0)            # no hidden layer: a linear classifier
hidden = nn.MLP([2, 8, 2], rng=0)         # one hidden ReLU layer
for model in (linear, hidden):
    dl.train.fit(model, X, y, epochs=100, optimizer=optim.Adam(model.parameters(), lr=0.05),
                 progress=False)
fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
for ax, model, name in [(axes[0], linear, "linear"), (axes[1], hidden, "one hidden ReLU layer")]:
    _, acc = dl.train.evaluate(model, X, y, "cross_entropy")
    plot.decision_boundary(model, X, y, ax=ax, title=f"{name}: accuracy {acc:.2f}")

# %% [markdown]
# ## A deep network on the spirals
#
# Three interleaved spirals are a harder problem. Here is a network with three
# hidden layers of 64 ReLU units: a *deep* network, where the XOR model above,
# with one hidden layer, was a *shallow* one. A **hidden layer** is any layer
# but the last, whose outputs are seen only by the next layer. It is trained
# with Adam on **minibatches**: each step computes the loss on 32 examples
# rather than on all 300, which makes a step cheaper and noisier.
# `dl.train.fit` shows a progress bar and returns the loss and accuracy of every
# epoch.

# %%
X, y = data.spirals(n_per_class=100, n_classes=3, seed=0)
deep = nn.MLP([2, 64, 64, 64, 3], rng=0)
print(deep)
history = dl.train.fit(deep, X, y, epochs=150, batch_size=32,
                       optimizer=optim.Adam(deep.parameters(), lr=0.01))

# %%
print(f"final training accuracy: {history.accuracy[-1]:.2f}")
plot.curves(history)

# %%
plot.decision_boundary(deep, X, y, title="what the deep network learned")

# %% [markdown]
# ## Representations, layer by layer
#
# Each hidden layer re-describes the data. Below, the output of each hidden
# layer of the trained network is projected onto its two main directions
# (principal components). The spirals start tangled; with each layer the
# classes move further apart, until the last hidden layer's output separates
# them with straight lines: it has to, since all that follows it is one linear
# map, the last layer, which turns it into the logits (the scores of the three
# classes, in the last panel). The hidden layers have turned a problem no
# straight line solves into one that straight lines do. This is the sense in
# which deep networks *learn representations*.

# %%
plot.representations(deep, X, y)

# %% [markdown]
# ## Depth and initialisation
#
# Depth has a price. A signal passing through 50 layers is multiplied by 50
# weight matrices: if each shrinks it a little, it **vanishes**; if each
# enlarges it a little, it **explodes**. For ReLU layers, **He initialisation**
# draws weights with standard deviation $\sqrt{2 / D_{in}}$, which keeps the
# size of the activations steady: the factor 2 makes up for the ReLU zeroing
# half of its inputs. The plot shows the spread of each layer's activations
# for a 50-layer ReLU network with three choices of the weights' standard
# deviation.
#
# Training meets the same products on the way back: the gradient of the loss
# passes through the same 50 weight matrices in reverse order, so with a poor
# initialisation it too shrinks towards nothing (**vanishing gradients**) or
# blows up (**exploding gradients**), and the first layers learn nothing or
# diverge. Section 1.2 shows the vanishing on a chain of sigmoids.

# %%
x_batch = np.random.default_rng(0).standard_normal((256, 64))
stats = {}
for name, init in [("std 0.05 (too small)", 0.05), ("He: sqrt(2/64) = 0.18", "he"),
                   ("std 0.3 (too large)", 0.3)]:
    net = nn.MLP([64] * 51, init=init, rng=0)
    with dl.no_grad():
        stats[name] = net.trace(x_batch)[1::2]  # the output of every ReLU
    print(f"{name:22s} std after the last hidden layer: {np.std(stats[name][-1].data):.3g}")
plot.layer_statistics(stats)


# %% [markdown] exercise="1.1.1" id="dense" points=1
# ## Exercises
#
# Write each function in the cell marked `YOUR CODE HERE` (delete the
# `raise NotImplementedError()` line), then run the test cell below it. The
# visible tests are quick checks; the grader also runs hidden tests on random
# inputs of several shapes. All arrays are numpy arrays and batches are rows.
#
# ### Exercise: a dense layer
#
# Write `dense(x, W, b)` returning `x @ W + b` for `x` of shape $(N, D_{in})$,
# `W` of shape $(D_{in}, D_{out})$ and `b` of shape $(D_{out},)$.

# %% answer
def dense(x, W, b):
    """x (N, D_in), W (D_in, D_out), b (D_out,) -> (N, D_out)."""
    ### BEGIN SOLUTION
    return x @ W + b
    ### END SOLUTION


# %% tests
x = np.array([[1.0, 2.0]])
W = np.array([[1.0, 0.0, -1.0], [0.5, 1.0, 2.0]])
b = np.array([0.1, 0.2, 0.3])
assert_close(
    dense(x.copy(), W.copy(), b.copy()),
    [[2.1, 2.2, 3.3]],
    name="dense(x, W, b)",
    mistakes={"add the bias b": x @ W, "add the bias, do not subtract it": x @ W - b},
)
print("dense: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1101)
for n, d_in, d_out in [(1, 1, 1), (5, 3, 4), (7, 6, 2)]:
    x, W, b = (
        rng.standard_normal((n, d_in)),
        rng.standard_normal((d_in, d_out)),
        rng.standard_normal(d_out),
    )
    assert_close(
        dense(x.copy(), W.copy(), b.copy()),
        x @ W + b,
        name=f"dense(x, W, b) for x {x.shape}, W {W.shape}",
        mistakes={"add the bias b": x @ W, "add the bias, do not subtract it": x @ W - b},
    )
### END HIDDEN TESTS

# %% [markdown] appendix
# `x @ W` multiplies each row of `x` (one example) by `W`, giving one value per
# output unit; adding `b` (shape $(D_{out},)$) broadcasts it over the rows, so
# every example gets the same bias.

# %% [markdown] exercise="1.1.2" id="activations" points=2
# ### Exercise: activation functions
#
# Write `relu(z)`, the elementwise $\max(z, 0)$, and `sigmoid(z)`, the
# elementwise $\sigma(z) = 1 / (1 + e^{-z})$. Neither may change its input.
# The tests keep $|z|$ up to 30. Beyond that, mind overflow: $e^{-z}$
# overflows for $z < -709$, and numpy warns. Exercise 1.2.2 asks for a
# sigmoid derivative that never overflows, and scores it there (once in the
# chapter). A formula that never exponentiates a large positive number is
# $\sigma(z) = \frac{1}{2}(1 + \tanh(z/2))$; another treats $z \ge 0$ and
# $z < 0$ separately.

# %% answer
def relu(z):
    """Elementwise max(z, 0); any shape."""
    ### BEGIN SOLUTION
    return np.maximum(z, 0.0)
    ### END SOLUTION


def sigmoid(z):
    """Elementwise 1 / (1 + exp(-z)); any shape; no overflow."""
    ### BEGIN SOLUTION
    e = np.exp(-np.abs(z))  # never more than 1
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    ### END SOLUTION


# %% tests
z = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
assert_close(
    relu(z),
    [0.0, 0.0, 0.0, 0.5, 2.0],
    name="relu(z)",
    mistakes={"return the values max(z, 0), not the mask z > 0": z > 0},
)
assert_close(
    z, [-2.0, -0.5, 0.0, 0.5, 2.0], name="z after relu(z) (relu must not change its input)"
)
assert_close(
    sigmoid(z),
    [0.11920292202211755, 0.3775406687981454, 0.5, 0.6224593312018546, 0.8807970779778823],
    name="sigmoid(z)",
    mistakes={
        "sigma(z) = 1 / (1 + exp(-z)): check the sign": [
            0.8807970779778823,
            0.6224593312018546,
            0.5,
            0.3775406687981454,
            0.11920292202211755,
        ]
    },
)
assert_close(
    z, [-2.0, -0.5, 0.0, 0.5, 2.0], name="z after sigmoid(z) (sigmoid must not change its input)"
)
grid = np.array([[-30.0, -7.5], [7.5, 30.0]])
assert_close(
    sigmoid(grid),
    [[9.357622968839299e-14, 0.0005527786369235996], [0.9994472213630764, 0.9999999999999065]],
    name="sigmoid(z) for z of shape (2, 2) from -30 to 30",
    atol=1e-12,
)
print("relu and sigmoid: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1102)
for shape in [(3,), (4, 5), (2, 3, 4)]:
    z = rng.standard_normal(shape) * 5
    before = z.copy()
    assert_close(
        relu(z),
        np.where(z > 0, z, 0.0),
        name=f"relu(z) for z of shape {shape}",
        mistakes={"return the values max(z, 0), not the mask z > 0": z > 0},
    )
    assert_close(z, before, name="z after relu(z) (relu must not change its input)")
    assert_close(
        sigmoid(z),
        0.5 * (1 + np.tanh(z / 2)),
        name=f"sigmoid(z) for z of shape {shape}",
        atol=1e-12,
    )
    assert_close(z, before, name="z after sigmoid(z) (sigmoid must not change its input)")
### END HIDDEN TESTS

# %% [markdown] appendix
# `np.maximum(z, 0.0)` compares elementwise and returns a new array. The
# sigmoid `1 / (1 + np.exp(-z))` is right for the tests' range; the answer goes
# further and never overflows (which Exercise 1.2.2 asks for): `e = exp(-|z|)` never exceeds 1; for
# $z \ge 0$, $\sigma(z) = 1/(1 + e^{-z})$, and for $z < 0$ multiplying numerator and
# denominator by $e^{z}$ gives $\sigma(z) = e^{z}/(1 + e^{z})$. Both branches are
# computed from the same safe `e`, so `np.where` never meets an overflow.

# %% [markdown] exercise="1.1.3" id="mlp_forward" points=2
# ### Exercise: the forward pass of a deep network
#
# Write `mlp_forward(x, params, activation=relu)`. `params` is a list of
# `(W, b)` pairs, one per layer; apply a dense layer after layer, with the
# activation after every layer **except the last** (the last layer's outputs are
# the scores, or *logits*). It must work for any number of layers, including
# one: the tests try networks of one, two and three layers.

# %% answer
def mlp_forward(x, params, activation=relu):
    """x (N, D_0); params [(W1, b1), ..., (WL, bL)] with Wl (D_{l-1}, D_l) -> (N, D_L)."""
    ### BEGIN SOLUTION
    h = x
    for i, (W, b) in enumerate(params):
        h = h @ W + b  # the same as dense(h, W, b)
        if i < len(params) - 1:
            h = activation(h)
    return h
    ### END SOLUTION


# %% tests
x = np.array([[1.0, -1.0]])
layers = [
    (np.array([[1.0, 2.0], [3.0, -4.0]]), np.array([0.0, 1.0])),
    (np.array([[1.0, -1.0], [-1.0, 0.5]]), np.array([0.5, 0.0])),
    (np.array([[2.0], [1.0]]), np.array([-4.0])),
]
ramp = lambda z: np.maximum(z, 0.0)  # a ReLU of the test's own, so that only mlp_forward is tested
ANY_DEPTH = "the network may have any number of layers, one or many: loop over params"


def forward(x, params, activation):
    """mlp_forward on copies (the answer may change its arguments), failing with a
    hint if it raises."""
    try:
        return mlp_forward(x.copy(), [(W.copy(), b.copy()) for W, b in params], activation)
    except (IndexError, ValueError) as error:
        raise CheckError(
            f"mlp_forward for a network of {len(params)} layer(s) raised "
            f"{type(error).__name__}: {error}\n  hint: {ANY_DEPTH}"
        ) from None


one = [(np.array([[1.0], [2.0]]), np.array([0.5]))]
assert_close(
    forward(x, one, ramp),
    [[-0.5]],
    name="mlp_forward for one layer",
    mistakes={"no activation after the last layer (here the only one)": [[0.0]]},
)
two = [layers[0], (np.array([[1.0], [-1.0]]), np.array([0.5]))]
assert_close(
    forward(x, two, ramp),
    [[-6.5]],
    name="mlp_forward for two layers",
    mistakes={
        "no activation after the last layer: its outputs are the logits": [[0.0]],
        "apply the activation after every layer but the last": [[-8.5]],
    },
)
assert_close(
    forward(x, layers, ramp),
    [[-0.5]],
    name="mlp_forward for three layers",
    mistakes={
        "no activation after the last layer: its outputs are the logits": [[0.0]],
        f"use every layer, not only the first two: {ANY_DEPTH}": [[-6.5, 3.5]],
    },
)
assert_close(
    forward(x, layers, np.tanh),
    [[-4.89843153]],
    name="mlp_forward(x, params, np.tanh) for three layers",
    mistakes={"use the activation you are given, not a ReLU of your own": [[-0.5]]},
)
print("mlp_forward: visible tests passed")


### BEGIN HIDDEN TESTS
def _reference_mlp(x, params, act):
    h = x
    for i, (W, b) in enumerate(params):
        h = h @ W + b
        h = act(h) if i < len(params) - 1 else h
    return h


def _all_activated(x, params, act):
    h = x
    for W, b in params:
        h = act(h @ W + b)
    return h


rng = np.random.default_rng(1103)
for sizes, act in [
    ([3, 2], ramp),
    ([4, 8, 3], ramp),
    ([2, 5, 5, 5, 5, 2], ramp),
    ([3, 6, 6, 1], np.tanh),
]:
    params = [
        (rng.standard_normal((m, n)), rng.standard_normal(n)) for m, n in zip(sizes, sizes[1:])
    ]
    x = rng.standard_normal((6, sizes[0]))
    assert_close(
        forward(x, params, act),
        _reference_mlp(x, params, act),
        name=f"mlp_forward for layer sizes {sizes}",
        mistakes={"no activation after the last layer": _all_activated(x, params, act)},
    )
### END HIDDEN TESTS

# %% [markdown] appendix
# Each layer feeds the next: the activation bends the output of every hidden
# layer, while the last layer's output is left linear so it can take any value
# (the logits). The loop runs once per `(W, b)` pair, so any depth works.

# %% [markdown] exercise="1.1.4" id="he_init" points=2
# ### Exercise: He initialisation
#
# Write `he_init(fan_in, fan_out, rng)` returning `(W, b)`: `W` of shape
# `(fan_in, fan_out)` drawn at random from the generator `rng` (a
# `np.random.Generator`: use its methods, such as `rng.standard_normal`, so that
# the same seed gives the same weights) with mean 0 and standard deviation
# $\sqrt{2 / \text{fan\_in}}$, and `b` zeros of shape `(fan_out,)`. The test
# pushes data through 50 ReLU layers initialised with your function and checks
# that the activations neither vanish nor explode.
#
# He's standard deviation is one of a family. **LeCun initialisation** uses
# $\sqrt{1/\text{fan\_in}}$, which keeps the variance steady through linear
# layers (or tanh layers near 0), and **Glorot** (or **Xavier**) initialisation
# uses $\sqrt{2/(\text{fan\_in} + \text{fan\_out})}$, a compromise between the
# forward and the backward pass for tanh and sigmoid layers. Both lose half the
# variance at every ReLU, which is what the factor 2 of He makes up for.

# %% answer
def he_init(fan_in, fan_out, rng):
    """-> W (fan_in, fan_out) with std sqrt(2 / fan_in), b zeros (fan_out,)."""
    ### BEGIN SOLUTION
    W = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
    b = np.zeros(fan_out)
    return W, b
    ### END SOLUTION


# %% tests
def through_50_relu_layers(seed):
    """How much 50 ReLU layers made with he_init change the activations' mean square."""
    h = np.random.default_rng(1).standard_normal((256, 256))
    start = np.mean(h**2)
    rng = np.random.default_rng(seed)
    for _ in range(50):
        W, b = he_init(256, 256, rng)
        h = np.maximum(h @ W + b, 0.0)
    return np.mean(h**2) / start


def check_shapes(fan_in, fan_out, seed):
    W, b = he_init(fan_in, fan_out, np.random.default_rng(seed))
    if np.shape(W) == (fan_out, fan_in) and fan_in != fan_out:
        raise CheckError(
            f"he_init({fan_in}, {fan_out}, rng): W has shape {np.shape(W)}, the transpose "
            f"of (fan_in, fan_out) = {(fan_in, fan_out)}.\n  hint: W has one row per "
            "input and one column per output, so that x @ W works (as in dense)"
        )
    if np.shape(W) != (fan_in, fan_out):
        raise CheckError(
            f"he_init({fan_in}, {fan_out}, rng): W has shape {np.shape(W)} but should "
            f"have shape (fan_in, fan_out) = {(fan_in, fan_out)}"
        )
    if np.shape(b) != (fan_out,):
        raise CheckError(
            f"he_init({fan_in}, {fan_out}, rng): b has shape {np.shape(b)} but should "
            f"have shape (fan_out,) = {(fan_out,)}"
        )
    return W, b


def check_seeding(fan_in, fan_out, seed):
    """he_init draws from the rng it is given: the same seed twice, the same W;
    another seed, another."""
    first, again = check_shapes(fan_in, fan_out, seed)[0], check_shapes(fan_in, fan_out, seed)[0]
    other = check_shapes(fan_in, fan_out, seed + 1)[0]
    for wrong, what in [
        (not np.array_equal(first, again), "different weights for the same seed"),
        (np.array_equal(first, other), "the same weights for different seeds"),
    ]:
        if wrong:
            raise CheckError(
                f"he_init({fan_in}, {fan_out}, rng) gave {what}.\n  hint: draw W from the "
                "generator rng you are given (rng.standard_normal, rng.normal), not from "
                "np.random or a generator of your own"
            )


W, b = check_shapes(400, 300, seed=0)
assert_close(b, np.zeros(300), name="b", mistakes={"the biases start at zero": np.ones(300)})
assert_close(
    np.std(W),
    np.sqrt(2 / 400),
    name="the standard deviation of W",
    rtol=0.03,
    mistakes={
        "use He's sqrt(2 / fan_in), not LeCun's sqrt(1 / fan_in)": np.sqrt(1 / 400),
        "use He's sqrt(2 / fan_in), not Glorot's (Xavier's) sqrt(2 / (fan_in + fan_out))": np.sqrt(
            2 / 700
        ),
        "divide by fan_in (400, the rows of W), not fan_out (300)": np.sqrt(2 / 300),
    },
)
check_seeding(40, 60, seed=7)
ratio = through_50_relu_layers(seed=0)
# He: between 0.05 and 10 for each of 300 random streams tried; LeCun's 1/fan_in: 2**-50
assert 1e-3 < ratio < 1e3, (
    f"after 50 ReLU layers the activations' mean square changed by a factor {ratio:.3g}: "
    "they vanish (factor < 0.001) or explode (factor > 1000); check the standard deviation of W"
)
print("he_init: visible tests passed")
### BEGIN HIDDEN TESTS
check_seeding(50, 60, seed=1104)
W1, _ = check_shapes(50, 60, seed=1104)
assert_close(np.mean(W1), 0.0, name="the mean of W", atol=0.03)
ratio = through_50_relu_layers(seed=1104)
assert 1e-3 < ratio < 1e3, (
    f"after 50 ReLU layers the activations' mean square changed by a factor {ratio:.3g}: "
    "they vanish (factor < 0.001) or explode (factor > 1000); check the standard deviation of W"
)
W, b = check_shapes(30, 500, seed=9)
assert_close(
    np.std(W),
    np.sqrt(2 / 30),
    name="the standard deviation of W for fan_in 30, fan_out 500",
    rtol=0.03,
    mistakes={
        "use He's sqrt(2 / fan_in), not LeCun's sqrt(1 / fan_in)": np.sqrt(1 / 30),
        "use He's sqrt(2 / fan_in), not Glorot's (Xavier's) sqrt(2 / (fan_in + fan_out))": np.sqrt(
            2 / 530
        ),
        "divide by fan_in, not fan_out": np.sqrt(2 / 500),
    },
)
assert_close(
    b, np.zeros(500), name="b for fan_out 500", mistakes={"the biases start at zero": np.ones(500)}
)
### END HIDDEN TESTS

# %% [markdown] appendix
# For a ReLU layer with weights of variance $\sigma^2$, the mean square of the
# outputs is $D_{in}\,\sigma^2 / 2$ times that of the inputs: each of the
# $D_{in}$ products adds variance, and the ReLU zeroes half of them. Choosing
# $\sigma^2 = 2 / D_{in}$ makes that factor 1, so 50 layers change nothing on
# average. Biases start at zero.
