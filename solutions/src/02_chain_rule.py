# %% [markdown] total_points=20
# # 1.2 Chain Rule
#
# Training a network means nudging every weight in the direction that lowers
# the loss, so we need the derivative of the loss with respect to each weight.
# The loss is a long composition of functions — layer after layer — and the
# tool for differentiating a composition is the **chain rule** of calculus.
#
# The first half of this notebook applies it to numbers: one composition, then
# chains of any length, with derivatives checked numerically. The second half
# goes from numbers to vectors and matrices (the multivariable chain rule,
# Jacobians, the gradients of a dense layer and of the softmax), names the two
# orders in which the chain rule's products can be taken (forward and reverse
# mode) and measures what each costs, and makes gradient checking a skill.

# %% locked="setup"
import matplotlib.pyplot as plt
import numpy as np

import dlcourse as dl
from dlcourse.gradcheck import check_vjp
from dlcourse.testing import CheckError, assert_close, numerical_grad, numerical_vjp, rel_error

# %% [markdown]
# ## The chain rule
#
# If $y = f(g(x))$, a small change in $x$ changes $g(x)$ by about $g'(x)$ times
# as much, and that change in $g$ changes $f$ by about $f'(g(x))$ times as much.
# The two rates multiply:
#
# $$\frac{\mathrm{d}y}{\mathrm{d}x} = f'(g(x)) \cdot g'(x) \tag{1.1}$$
#
# Note where each derivative is evaluated: $g'$ at $x$, but $f'$ at $g(x)$, the
# point that $f$ actually receives. For example, with $y = \tanh(x^2)$ we have
# $g(x) = x^2$, $g'(x) = 2x$, $f = \tanh$ and $f'(u) = 1 - \tanh^2(u)$, so
#
# $$\frac{\mathrm{d}y}{\mathrm{d}x} = \bigl(1 - \tanh^2(x^2)\bigr) \cdot 2x .$$

# %%
x = np.linspace(-2, 2, 401)
y = np.tanh(x ** 2)
by_chain_rule = (1 - np.tanh(x ** 2) ** 2) * 2 * x

# the same derivative from dlcourse's engine, which applies (1.1) mechanically
t = dl.Tensor(x, requires_grad=True)
(t ** 2).tanh().sum().backward()
print("chain rule == engine:", np.allclose(by_chain_rule, t.grad))

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.plot(x, y, label=r"$y = \tanh(x^2)$")
ax.plot(x, by_chain_rule, label=r"$dy/dx$ by the chain rule (1.1)")
ax.set(xlabel="$x$")
ax.legend()
ax.grid(alpha=0.3);

# %% [markdown]
# ## Checking derivatives numerically
#
# A derivative is a limit of difference quotients, so we can approximate it
# with a small step $h$. Taylor's expansion around $x$,
#
# $$f(x \pm h) = f(x) \pm h f'(x) + \frac{h^2}{2} f''(x) \pm \frac{h^3}{6} f'''(x) + \dots,$$
#
# tells how far off each quotient is. The **forward difference**
# $\frac{f(x+h) - f(x)}{h} = f'(x) + \frac{h}{2} f''(x) + \dots$ has an error
# proportional to $h$. In the **central difference**
#
# $$\frac{f(x+h) - f(x-h)}{2h} = f'(x) + \frac{h^2}{6} f'''(x) + \dots$$
#
# the even-order terms, $f(x)$ and $\frac{h^2}{2} f''(x)$ and so on, are the
# same in both expansions and cancel, so the error starts at
# $\frac{h^2}{6} f'''(x)$ and shrinks like $h^2$: ten times smaller $h$, a
# hundred times smaller error — until $h$ is so small that rounding errors of
# floating-point numbers (about $10^{-16}$ relative) take over. That is why
# gradient checks use $h \approx 10^{-5}$ to $10^{-6}$. The slopes of the two
# lines in the log-log plot below are the powers of $h$.

# %%
f, f_prime, x0 = np.tanh, lambda u: 1 - np.tanh(u) ** 2, 0.7
hs = np.logspace(-8, -1, 29)
forward = np.abs((f(x0 + hs) - f(x0)) / hs - f_prime(x0))
central = np.abs((f(x0 + hs) - f(x0 - hs)) / (2 * hs) - f_prime(x0))
large = hs > 1e-3  # where truncation, not rounding, dominates
for name, err in [("forward", forward), ("central", central)]:
    slope = np.polyfit(np.log10(hs[large]), np.log10(err[large]), 1)[0]
    print(f"{name} difference: error ~ h^{slope:.1f}")

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.loglog(hs, forward, "o-", ms=3, label="forward difference")
ax.loglog(hs, central, "o-", ms=3, label="central difference")
ax.set(xlabel="step $h$", ylabel="error of the derivative", title=r"$f = \tanh$ at $x = 0.7$")
ax.legend()
ax.grid(alpha=0.3, which="both");

# %% [markdown]
# `dlcourse.testing.numerical_grad` computes central differences for every
# element of an array, and `dlcourse.gradcheck.gradcheck` compares them with
# the engine's gradients — the same check the autograder applies to your code.

# %%
w = np.array([0.3, -1.2, 2.0])
loss = lambda v: np.sum(np.tanh(v ** 2))
print("numerical:", numerical_grad(loss, w).round(6))
print("analytic: ", ((1 - np.tanh(w ** 2) ** 2) * 2 * w).round(6))

# %% [markdown]
# ## Long chains and vanishing gradients
#
# Applying (1.1) again and again to a chain $y = f_n(\dots f_2(f_1(x)))$ gives a
# **product** of derivatives, one per link. The sigmoid's derivative is at most
# $1/4$, so the derivative of a chain of $n$ sigmoids is at most $4^{-n}$: it
# **vanishes** exponentially with depth. The first layers of a deep sigmoid
# network receive almost no gradient and barely learn; this is one reason deep
# networks use ReLU, whose slope is exactly 1 wherever it is active.
#
# The plot also follows a chain of $\tanh$s from the same start. Its line falls
# far more slowly: $\tanh$ has slope 1 at 0 (four times the sigmoid's best),
# and the values passed along the chain drift towards 0, where each factor
# $1 - \tanh^2$ is close to 1. The derivative still shrinks, but like a power
# of $n$ rather than exponentially. That holds only near 0: a few units away
# from 0, $\tanh$ flattens out (saturates) like the sigmoid, and its slope is
# tiny there (0.01 at 3).

# %%
depths = np.arange(1, 31)
grads = {}
for name, fn in [("sigmoid", dl.Tensor.sigmoid), ("tanh", dl.Tensor.tanh)]:
    grads[name] = []
    for n in depths:
        x = dl.Tensor(0.5, requires_grad=True)
        y = x
        for _ in range(n):
            y = fn(y)
        y.backward()
        grads[name].append(abs(x.grad.item()))
print(f"dy/dx through 30 sigmoids: {grads['sigmoid'][-1]:.2e} (bound 4^-30 = {4.0 ** -30:.2e})")
print(f"dy/dx through 30 tanhs:    {grads['tanh'][-1]:.2e}")
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for name, g in grads.items():
    ax.semilogy(depths, g, "o-", ms=3, label=f"chain of {name}s")
ax.semilogy(depths, 0.25 ** depths, "k--", lw=1, label="$4^{-n}$")
ax.set(xlabel="length of the chain $n$", ylabel="$|dy/dx|$")
ax.legend()
ax.grid(alpha=0.3, which="both");


# %% [markdown] exercise="1.2.1" id="numerical_derivative" points=2
# ## Exercises
#
# ### Exercise: the central difference
#
# Write `numerical_derivative(f, x, h=1e-5)` returning the central difference
# $\frac{f(x+h) - f(x-h)}{2h}$. `f` works elementwise on numpy arrays, and `x`
# may be a number or an array: return the derivative at every element.

# %% answer
def numerical_derivative(f, x, h=1e-5):
    """Central difference of an elementwise function f at x (a number or an array)."""
    ### BEGIN SOLUTION
    return (f(x + h) - f(x - h)) / (2 * h)
    ### END SOLUTION


# %% tests
PRECEDENCE = (
    "write / (2 * h): / and * bind equally tightly and run left to right, so "
    "(f(x+h) - f(x-h)) / 2*h means ((f(x+h) - f(x-h)) / 2) * h"
)
x = np.array([0.0, 0.5, 1.0])
assert_close(
    numerical_derivative(np.sin, x.copy()),
    np.cos(x),
    name="numerical_derivative(np.sin, x)",
    atol=1e-9,
    rtol=1e-9,
    mistakes={
        "use the central difference (f(x+h) - f(x-h)) / (2h)": (np.sin(x + 1e-5) - np.sin(x))
        / 1e-5,
        "divide by 2h: the points x+h and x-h are 2h apart": 2 * np.cos(x),
        PRECEDENCE: (np.sin(x + 1e-5) - np.sin(x - 1e-5)) / 2 * 1e-5,
    },
)
print("numerical_derivative: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1201)
for shape in [(), (4,), (3, 2)]:
    x = rng.uniform(-2, 2, shape)
    cube = lambda u: u**3
    h = 1e-3  # the central difference of u^3 is exactly 3u^2 + h^2
    assert_close(
        numerical_derivative(cube, np.copy(x), h=h),
        3 * x**2 + h**2,
        atol=1e-9,
        rtol=1e-9,
        name=f"numerical_derivative(u**3, x, h=1e-3) for x of shape {np.shape(x)}",
        mistakes={
            "use the step h you are given": 3 * x**2 + 1e-10,
            "divide by 2h: the points x+h and x-h are 2h apart": 2 * (3 * x**2 + h**2),
            PRECEDENCE: (3 * x**2 + h**2) * h * h,
        },
    )
    assert_close(
        numerical_derivative(np.exp, np.copy(x)),
        np.exp(x),
        atol=1e-8,
        rtol=1e-8,
        name=f"numerical_derivative(np.exp, x) for x of shape {np.shape(x)}",
    )
### END HIDDEN TESTS

# %% [markdown] appendix
# The central difference evaluates `f` at two points $2h$ apart, symmetric
# around `x`; the even-order terms of the two Taylor expansions (among them
# $\frac{h^2}{2} f''$) cancel, leaving an error of about $\frac{h^2}{6} f'''$,
# of order $h^2$. Because `f` works elementwise, `x + h` shifts every
# element at once and the formula gives every element's derivative.

# %% [markdown] exercise="1.2.2" id="activation_derivatives" points=2
# ### Exercise: derivatives of activations
#
# Write `sigmoid_prime(x)` and `tanh_prime(x)`, the derivatives of
# $\sigma(x) = 1/(1 + e^{-x})$ and $\tanh(x)$, elementwise. Both have a neat
# form in terms of the function itself: $\sigma' = \sigma\,(1 - \sigma)$ and
# $\tanh' = 1 - \tanh^2$. They must work without overflow or warnings for
# $|x|$ up to 1000 (`np.tanh` never overflows, and
# $\sigma(x) = \frac{1}{2}(1 + \tanh(x/2))$).

# %% answer gradient=true
def sigmoid_prime(x):
    """d/dx sigmoid(x), elementwise."""
    ### BEGIN SOLUTION
    s = 0.5 * (1.0 + np.tanh(0.5 * x))
    return s * (1.0 - s)
    ### END SOLUTION


def tanh_prime(x):
    """d/dx tanh(x), elementwise."""
    ### BEGIN SOLUTION
    return 1.0 - np.tanh(x) ** 2
    ### END SOLUTION


# %% tests
x = np.array([-1.0, 0.0, 2.0])
s = 1 / (1 + np.exp(-x))
assert_close(
    sigmoid_prime(x.copy()),
    numerical_grad(lambda u: np.sum(1 / (1 + np.exp(-u))), x),
    name="sigmoid_prime(x)",
    mistakes={"sigma' = sigma(x) (1 - sigma(x)), not sigma(x) (1 - x)": s * (1 - x)},
)
assert_close(
    tanh_prime(x.copy()),
    numerical_grad(lambda u: np.sum(np.tanh(u)), x),
    name="tanh_prime(x)",
    mistakes={"tanh' = 1 - tanh(x)^2, not 1 - x^2": 1 - x**2},
)

OVERFLOW_HINTS = {  # what overflows in each function's usual formula, and how to avoid it
    "sigmoid_prime": "exp(-x) overflows for x < -709; write sigma(x) as (1 + tanh(x / 2)) / 2, or "
    "treat x >= 0 and x < 0 separately",
    "tanh_prime": "cosh(x) and exp(x) overflow for |x| > 710 (so 1 / cosh(x)**2 warns, though its "
    "value is right); write tanh' as 1 - tanh(x)**2, and np.tanh never overflows",
}


def without_overflow(name, derivative, x):
    """derivative(x), failing with a hint if numpy warns (overflow, 0/0 or inf - inf)."""
    try:
        with np.errstate(over="raise", invalid="raise"):
            return derivative(np.copy(x))
    except FloatingPointError as error:
        raise CheckError(
            f"{name}(x) warns for x from {np.min(x):.4g} to {np.max(x):.4g}: {error}.\n  hint: "
            f"{OVERFLOW_HINTS[name]}"
        ) from None


far = np.array([-1000.0, 1000.0])
for name, derivative in [("sigmoid_prime", sigmoid_prime), ("tanh_prime", tanh_prime)]:
    assert_close(without_overflow(name, derivative, far), [0.0, 0.0], name=f"{name}([-1000, 1000])")
print("sigmoid_prime and tanh_prime: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1202)
for shape in [(5,), (3, 4)]:
    x = rng.uniform(-6, 6, shape)
    s = 0.5 * (1 + np.tanh(0.5 * x))
    assert_close(
        sigmoid_prime(x.copy()),
        s * (1 - s),
        name=f"sigmoid_prime(x) for x of shape {shape}",
        atol=1e-10,
    )
    assert_close(
        tanh_prime(x.copy()),
        1 - np.tanh(x) ** 2,
        name=f"tanh_prime(x) for x of shape {shape}",
        atol=1e-10,
    )
x = rng.uniform(-1000, 1000, (4, 5))
s = 0.5 * (1 + np.tanh(0.5 * x))
assert_close(
    without_overflow("sigmoid_prime", sigmoid_prime, x),
    s * (1 - s),
    atol=1e-12,
    name="sigmoid_prime(x) for x in the hundreds",
)
assert_close(
    without_overflow("tanh_prime", tanh_prime, x),
    1 - np.tanh(x) ** 2,
    atol=1e-12,
    name="tanh_prime(x) for x in the hundreds",
)
### END HIDDEN TESTS

# %% [markdown] appendix
# With $\sigma(x) = 1/(1 + e^{-x})$,
# $\sigma'(x) = e^{-x}/(1 + e^{-x})^2 = \sigma(x)(1 - \sigma(x))$.
# Computing $\sigma$ as $\frac{1}{2}(1 + \tanh(x/2))$ never overflows. For
# $\tanh$, $\frac{d}{dx}\tanh x = 1/\cosh^2 x = 1 - \tanh^2 x$.

# %% [markdown] exercise="1.2.3" id="chain_rule" points=2
# ### Exercise: the chain rule
#
# Write `chain_rule(f_prime, g, g_prime)` returning a **function** of `x` that
# computes $\frac{\mathrm{d}}{\mathrm{d}x} f(g(x))$ by equation (1.1). All the
# functions work elementwise on arrays.

# %% answer gradient=true
def chain_rule(f_prime, g, g_prime):
    """-> a function x -> d/dx f(g(x)) = f'(g(x)) * g'(x)."""
    ### BEGIN SOLUTION
    def derivative(x):
        return f_prime(g(x)) * g_prime(x)

    return derivative
    ### END SOLUTION


# %% tests
x = np.array([0.5, 1.0, 2.0])
d = chain_rule(np.cos, lambda u: u**2, lambda u: 2 * u)  # d/dx sin(x^2)
assert callable(d), "chain_rule must return a function of x"
assert_close(
    d(x.copy()),
    numerical_grad(lambda u: np.sum(np.sin(u**2)), x),
    name="chain_rule(cos, x^2, 2x)(x)",
    mistakes={
        "evaluate f' at g(x), not at x": np.cos(x) * 2 * x,
        "multiply by g'(x): (1.1) has two factors": np.cos(x**2),
    },
)
print("chain_rule: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1203)
cases = [  # name, f', g, g', the exact derivative of f(g(x))
    ("exp(3x)", np.exp, lambda u: 3 * u, lambda u: 3 + 0 * u, lambda u: 3 * np.exp(3 * u)),
    (
        "tanh(sin x)",
        lambda u: 1 - np.tanh(u) ** 2,
        np.sin,
        np.cos,
        lambda u: (1 - np.tanh(np.sin(u)) ** 2) * np.cos(u),
    ),
    (
        "log(1 + x^2)",
        lambda u: 1 / u,
        lambda u: 1 + u**2,
        lambda u: 2 * u,
        lambda u: 2 * u / (1 + u**2),
    ),
]
for name, f_prime, g, g_prime, exact in cases:
    x = rng.uniform(-1.5, 1.5, (4, 3))
    assert_close(
        chain_rule(f_prime, g, g_prime)(x.copy()),
        exact(x),
        atol=1e-9,
        name=f"the chain rule's derivative of {name}",
        mistakes={
            "evaluate f' at g(x), not at x": f_prime(x) * g_prime(x),
            "multiply by g'(x): (1.1) has two factors": f_prime(g(x)),
        },
    )
### END HIDDEN TESTS

# %% [markdown] appendix
# Equation (1.1) says the derivative of $f(g(x))$ is $f'$ evaluated at $g(x)$
# times $g'$ evaluated at $x$. The answer returns a closure that remembers
# `f_prime`, `g` and `g_prime` and applies exactly that product to any `x`.

# %% [markdown] exercise="1.2.4" id="chain_derivative" points=2
# ### Exercise: a chain of any length
#
# Write `chain_derivative(fs, f_primes, x)`: the derivative of
# $y = f_n(\dots f_2(f_1(x)))$ at `x`, where `fs = [f1, f2, ..., fn]` and
# `f_primes` are their derivatives. Apply (1.1) link by link: walk forward
# through the chain, keeping the current value and the derivative so far;
# each link multiplies the derivative by its own derivative **evaluated at the
# value it receives**. For an empty chain ($y = x$), the derivative is 1.
#
# This walk has a name: **forward accumulation**, or **forward mode**. The
# derivative travels forward together with the value, from $x$ to $y$, and at
# every step it is the derivative of the current value with respect to $x$.
# Exercise 1.2.5 walks the other way.

# %% answer gradient=true
def chain_derivative(fs, f_primes, x):
    """d/dx fs[-1](...fs[1](fs[0](x))), elementwise."""
    ### BEGIN SOLUTION
    value, derivative = x, np.ones_like(np.asarray(x, dtype=float))
    for f, f_prime in zip(fs, f_primes):
        derivative = derivative * f_prime(value)
        value = f(value)
    return derivative
    ### END SOLUTION


# %% tests
x = np.array([0.1, 0.6])
fs = [np.sin, np.exp]  # y = exp(sin(x))
f_primes = [np.cos, np.exp]
assert_close(
    chain_derivative(fs, f_primes, x.copy()),
    numerical_grad(lambda u: np.sum(np.exp(np.sin(u))), x),
    name="chain_derivative([sin, exp], [cos, exp], x)",
    mistakes={
        "evaluate each f' at the value its link receives, not at x": np.cos(x) * np.exp(x),
        "evaluate each f' at the value its link receives (its input), not at its output": np.cos(
            np.sin(x)
        )
        * np.exp(np.exp(np.sin(x))),
    },
)
print("chain_derivative: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1204)
sig = lambda u: 0.5 * (1 + np.tanh(0.5 * u))
links = [
    (np.sin, np.cos),
    (np.tanh, lambda u: 1 - np.tanh(u) ** 2),
    (sig, lambda u: sig(u) * (1 - sig(u))),
    (lambda u: u**2 + 1, lambda u: 2 * u),
]
for n in [1, 3, 10, 25]:
    chosen = [links[i] for i in rng.integers(0, len(links), n)]
    fs, f_primes = [f for f, _ in chosen], [fp for _, fp in chosen]
    x = rng.uniform(-1, 1, (3, 2))

    def composed(u):
        for f in fs:
            u = f(u)
        return u

    value, expected, at_x = x, np.ones_like(x), np.ones_like(x)
    for f, fp in chosen:
        expected, at_x, value = expected * fp(value), at_x * fp(x), f(value)
    assert_close(
        chain_derivative(fs, f_primes, x.copy()),
        expected,
        atol=1e-9,
        name=f"chain_derivative for a chain of {n} functions",
        mistakes={"evaluate each f' at the value its link receives, not at x": at_x},
    )
empty = chain_derivative([], [], np.array([2.0, 3.0]))
if np.ndim(empty) == 0:  # a single 1 stands for every element
    empty = np.full(2, empty, dtype=float)
assert_close(empty, [1.0, 1.0], name="chain_derivative([], [], x) (the derivative of y = x)")
### END HIDDEN TESTS

# %% [markdown] appendix
# Walking forward, `value` is the input the current link receives and
# `derivative` is $\mathrm{d}\,\text{value}/\mathrm{d}x$ so far. Each link
# multiplies it by its own derivative at `value` — equation (1.1) with
# $g$ being the chain so far — and then moves `value` one link on. Starting
# from 1 handles the empty chain.

# %% [markdown] exercise="1.2.5" id="chain_backward" points=2
# ## Forward and reverse accumulation
#
# Exercise 1.2.4 carried the derivative forward: after $k$ links it held
# $\mathrm{d}v_k/\mathrm{d}x$, the derivative of the $k$-th value
# $v_k = f_k(v_{k-1})$ (with $v_0 = x$ and $v_n = y$) with respect to the
# input. The chain rule's product can be multiplied in either order, and
# **reverse accumulation** (**reverse mode**) multiplies it from the other end.
# It first runs the chain forward and **stores** every value
# $v_0, \dots, v_{n-1}$; then it starts from $\mathrm{d}y/\mathrm{d}y = 1$ and
# walks back, one link at a time:
#
# $$\frac{\mathrm{d}y}{\mathrm{d}v_{k-1}} = \frac{\mathrm{d}y}{\mathrm{d}v_k}\, f_k'(v_{k-1}).$$
#
# This is the book's backpropagation in miniature: "starting from the final
# layer, the chain rule is repeatedly applied to propagate the gradient
# backwards through the network, storing intermediate results as it goes
# along." The backward walk needs the stored $v_{k-1}$, because each local
# derivative is evaluated at the value its link received.
#
# For a chain of numbers both orders give the same product and cost the same.
# What differs is what they give along the way. Forward mode yields the
# derivative of *every value* with respect to *the input*; reverse mode yields
# the derivative of *the output* with respect to *every value*. A network has
# one output, the loss, and millions of weights, each entering the chain
# somewhere in the middle, so reverse mode is what we want: one backward walk
# gives $\partial L/\partial v$ at every point where a weight enters.
#
# ### Exercise: the reverse walk
#
# Write `chain_backward(fs, f_primes, x)` for the chain
# $y = f_n(\dots f_2(f_1(x)))$ of Exercise 4. Return the list
# `[dy/dv0, dy/dv1, ..., dy/dvn]` of the derivatives of $y$ with respect to
# every value of the chain, $x = v_0$ first and $y = v_n$ (whose derivative
# is 1) last: $n + 1$ arrays of the shape of `x`. Store the values in a forward
# pass, then multiply from the end. Call each function and each derivative at
# most once: storing the values is what makes reverse mode cheap.

# %% answer gradient=true
def chain_backward(fs, f_primes, x):
    """[dy/dv_0, ..., dy/dv_n] for y = v_n, v_k = fs[k-1](v_{k-1}), v_0 = x, elementwise."""
    ### BEGIN SOLUTION
    values = [x]
    for f in fs[:-1]:  # the inputs of the links; y itself is not needed
        values.append(f(values[-1]))
    grads = [np.ones_like(np.asarray(x, dtype=float))]
    for f_prime, value in zip(reversed(f_primes), reversed(values)):
        grads.append(grads[-1] * f_prime(value))
    return grads[::-1]
    ### END SOLUTION


# %% tests
def counted(fn, name, calls):
    """fn, counting its calls in calls[name]."""

    def wrapper(u):
        calls[name] = calls.get(name, 0) + 1
        return fn(u)

    return wrapper


def compose(fs):
    def composed(u):
        for f in fs:
            u = f(u)
        return u

    return composed


def check_chain_backward(links, x, name):
    """chain_backward against central differences of the rest of the chain after each value."""
    calls = {}
    fs = [counted(f, f"f{k + 1}", calls) for k, (f, _) in enumerate(links)]
    f_primes = [counted(fp, f"f{k + 1}'", calls) for k, (_, fp) in enumerate(links)]
    grads = chain_backward(fs, f_primes, x.copy())
    n = len(links)
    if not isinstance(grads, (list, tuple)) or len(grads) != n + 1:
        got = len(grads) if isinstance(grads, (list, tuple)) else type(grads).__name__
        raise CheckError(
            f"chain_backward for {name} returned {got}: return a list of {n + 1} arrays, the "
            "derivative of y with respect to each value of the chain, x first and y itself "
            "(derivative 1) last"
        )
    try:
        got = np.stack([np.broadcast_to(np.asarray(g, dtype=float), x.shape) for g in grads])
    except ValueError:
        raise CheckError(
            f"chain_backward for {name}: every derivative must have the shape of x, "
            f"{x.shape}; got shapes {[np.shape(g) for g in grads]}"
        ) from None
    plain = [f for f, _ in links]
    values = [x]
    for f in plain:
        values.append(f(values[-1]))
    numerical = np.stack(
        [numerical_grad(lambda u: np.sum(compose(plain[k:])(u)), values[k]) for k in range(n + 1)]
    )
    forward = np.stack(
        [numerical_grad(lambda u: np.sum(compose(plain[:k])(u)), x) for k in range(n + 1)]
    )
    assert_close(
        got,
        numerical,
        name=f"chain_backward for {name} (axis 0: dy/dv_0, ..., dy/dv_n)",
        atol=1e-7,
        rtol=1e-5,
        mistakes={
            "these are the derivatives of each value with respect to x (forward accumulation, "
            "Exercise 1.2.4); reverse mode returns the derivative of y with respect to each value: "
            "start from dy/dy = 1 at the end and walk back": forward,
            "the list runs from y to x: return it with x first, y last": numerical[::-1],
        },
    )
    repeated = {f: c for f, c in calls.items() if c > 1}
    if repeated:
        raise CheckError(
            f"chain_backward for {name} called "
            f"{', '.join(f'{f} {c} times' for f, c in repeated.items())}."
            "\n  hint: store the values of the forward pass in a list and reuse them on the way "
            "back: each function and each derivative is needed once"
        )


links = [(np.sin, np.cos), (np.exp, np.exp), (np.tanh, lambda u: 1 - np.tanh(u) ** 2)]
check_chain_backward(links, np.array([0.1, 0.6, -0.4]), "y = tanh(exp(sin(x)))")
check_chain_backward([], np.array([2.0, 3.0]), "the empty chain y = x")
print("chain_backward: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1205)
sig = lambda u: 0.5 * (1 + np.tanh(0.5 * u))
pool = [
    (np.sin, np.cos),
    (np.tanh, lambda u: 1 - np.tanh(u) ** 2),
    (sig, lambda u: sig(u) * (1 - sig(u))),
    (lambda u: u**2 + 1, lambda u: 2 * u),
]
for n in [1, 4, 12]:
    chosen = [pool[i] for i in rng.integers(0, len(pool), n)]
    check_chain_backward(chosen, rng.uniform(-1, 1, (3, 2)), f"a random chain of {n} functions")
### END HIDDEN TESTS

# %% [markdown] appendix
# The forward pass stores the inputs $v_0, \dots, v_{n-1}$ of the links (the
# output $y$ itself is never needed). The backward walk starts from
# $\mathrm{d}y/\mathrm{d}v_n = 1$; the link $v_k = f_k(v_{k-1})$ turns
# $\mathrm{d}y/\mathrm{d}v_k$ into $\mathrm{d}y/\mathrm{d}v_{k-1}$ by multiplying
# it with $f_k'(v_{k-1})$, its derivative at the stored value it received.
# The list grows from $y$ back to $x$, so it is reversed at the end. Each
# function and each derivative is called once: reverse mode costs about as
# much as forward mode here, and gives the derivative of $y$ with respect to
# every value at once.

# %% [markdown]
# ## Many paths: the multivariable chain rule
#
# A network is not a single chain. A value can feed several operations (its
# output *fans out*), and an operation can take several inputs. Suppose $f$
# depends on $w$ through two intermediate values, $f = F(u(w), v(w))$. A small
# change $\Delta w$ moves $u$ by about $\frac{\partial u}{\partial w}\Delta w$
# and $v$ by about $\frac{\partial v}{\partial w}\Delta w$, and $f$ responds to
# both:
#
# $$\frac{\partial f}{\partial w} = \frac{\partial f}{\partial u}\frac{\partial u}{\partial w}
#  + \frac{\partial f}{\partial v}\frac{\partial v}{\partial w}.$$
#
# This is the **multivariable chain rule**. Applied throughout a graph, it says
# that the derivative of the output with respect to a node is a **sum over all
# paths** from that node to the output, each path contributing the product of
# the local derivatives along its edges. Backpropagation never lists the paths,
# whose number can grow exponentially with depth. Walking the graph in reverse,
# it adds up at each node the gradients that arrive from its uses, then passes
# the total on: every shared tail of the paths is multiplied only once.
#
# So the rule for a value used more than once is: **gradients add**. Here is a
# small circuit in which $a = xy$ feeds both the sum $s = a + z$ and the final
# product, and $x$ is used twice, in $a$ and at the end:
#
# $$a = x y, \qquad s = a + z, \qquad b = \tanh(s), \qquad f = a b + x .$$
#
# | node | computed from | used by |
# |---|---|---|
# | $x$ | (an input) | $a$ and $f$ |
# | $y$, $z$ | (inputs) | $a$; $s$ |
# | $a = xy$ | $x$, $y$ | $s$ and $f$ |
# | $s = a + z$ | $a$, $z$ | $b$ |
# | $b = \tanh(s)$ | $s$ | $f$ |
# | $f = ab + x$ | $a$, $b$, $x$ | (the output) |
#
# Read backwards, the last column says where each node's gradient comes from:
# $x$ and $a$ each receive two contributions, one per use.

# %% locked="circuit"
def circuit(x, y, z):
    """f = a * tanh(a + z) + x with a = x * y, elementwise: a and x are both used twice."""
    a = x * y
    b = np.tanh(a + z)
    return a * b + x


# %% [markdown] exercise="1.2.6" id="circuit_backward" points=2
# ### Exercise: a circuit with fan-out
#
# Write `circuit_backward(dout, x, y, z)` returning `(dx, dy, dz)`: the
# gradients of $\sum \text{dout} \cdot f$ with respect to `x`, `y` and `z`, for
# `circuit` above (all arrays of one shape, elementwise). Walk the circuit
# backwards by hand, from $f$ to the inputs: first the gradients with respect
# to $b$, then $s$, then $a$, then the inputs. Wherever a value is used twice,
# add the gradients that come back from its two uses.

# %% answer gradient=true
def circuit_backward(dout, x, y, z):
    """Gradients of sum(dout * circuit(x, y, z)) -> (dx, dy, dz), each of the shape of x."""
    ### BEGIN SOLUTION
    a = x * y
    b = np.tanh(a + z)
    db = dout * a             # f = a * b + x: the product passes dout * a to b
    da = dout * b             # and dout * b to a (its first use)
    ds = db * (1 - b ** 2)    # through b = tanh(s), with s = a + z
    da = da + ds              # the second use of a, in s: gradients add
    dz = ds
    dx = da * y + dout        # x is used in a and at the end
    dy = da * x
    return dx, dy, dz
    ### END SOLUTION


# %% tests
def numerical_circuit(f, dout, x, y, z):
    """The gradients of sum(dout * f(x, y, z)) with respect to x, y and z, by central
    differences."""
    return (
        numerical_vjp(lambda u: f(u, y, z), x, dout),
        numerical_vjp(lambda u: f(x, u, z), y, dout),
        numerical_vjp(lambda u: f(x, y, u), z, dout),
    )


def check_circuit_backward(dout, x, y, z):
    grads = circuit_backward(dout.copy(), x.copy(), y.copy(), z.copy())
    if not isinstance(grads, (tuple, list)) or len(grads) != 3:
        raise CheckError("circuit_backward must return three arrays: dx, dy, dz")
    a0, x0 = x * y, x.copy()
    # the same circuit with one use of a value held fixed: its gradients follow the other paths only
    only_product = numerical_circuit(lambda x, y, z: x * y * np.tanh(a0 + z) + x, dout, x, y, z)
    only_tanh = numerical_circuit(lambda x, y, z: a0 * np.tanh(x * y + z) + x, dout, x, y, z)
    only_a = numerical_circuit(lambda x, y, z: x * y * np.tanh(x * y + z) + x0, dout, x, y, z)
    expected = numerical_circuit(circuit, dout, x, y, z)
    for k, name in [(2, "dz"), (1, "dy"), (0, "dx")]:
        assert_close(
            grads[k],
            expected[k],
            atol=1e-7,
            name=f"{name} of circuit_backward for x of shape {x.shape}",
            mistakes={
                "a is used twice, in the product a * b and in s = a + z: add the gradient "
                "that comes back through s": only_product[k],
                "a is used twice, in the product a * b and in s = a + z: add the gradient "
                "that comes back from the product": only_tanh[k],
                "x is used twice, in a and added at the end: "
                "add the gradient from both uses": only_a[k],
            },
        )


rng = np.random.default_rng(0)
check_circuit_backward(*rng.uniform(-1.5, 1.5, (4, 5)))
check_circuit_backward(np.array(1.0), np.array(0.5), np.array(-2.0), np.array(0.3))
print("circuit_backward: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1206)
for shape in [(3,), (2, 3)]:
    check_circuit_backward(*rng.uniform(-2, 2, (4, *shape)))
### END HIDDEN TESTS

# %% [markdown] appendix
# Backwards from $f = ab + x$: the product passes $\text{dout} \cdot a$ to $b$
# and $\text{dout} \cdot b$ to $a$, and the sum passes dout unchanged to $x$.
# Through $b = \tanh(s)$ the gradient is multiplied by
# $1 - \tanh^2(s) = 1 - b^2$, and the sum $s = a + z$ passes it unchanged to
# both $a$ and $z$. $a$ was used twice, so its gradient is the sum of what
# comes back from the product and from $s$; then $a = xy$ passes it on times $y$ to $x$ and times
# $x$ to $y$. $x$ was used twice too, so its gradient adds the dout of its direct
# use. Summing over the uses is the multivariable chain rule: every path from
# an input to $f$ contributes.

# %% [markdown]
# ## Jacobians and vector-Jacobian products
#
# For a function $f$ from $n$ numbers to $m$ numbers, all the partial
# derivatives form the **Jacobian**, an $m \times n$ matrix:
#
# $$J_f = \begin{pmatrix} \partial f_1/\partial x_1 & \cdots & \partial f_1/\partial x_n \\
# \vdots & & \vdots \\ \partial f_m/\partial x_1 & \cdots & \partial f_m/\partial x_n \end{pmatrix},
# \qquad (J_f)_{ij} = \frac{\partial f_i}{\partial x_j}.$$
#
# The chain rule for $y = f(g(x))$, with $u = g(x)$ in between, becomes a
# product of Jacobians, $J_{f \circ g}(x) = J_f(u)\, J_g(x)$, whose entries
# $\sum_k \frac{\partial f_i}{\partial u_k}\frac{\partial u_k}{\partial x_j}$
# are the sum over paths through every $u_k$. Equation (1.1) is the case
# $m = n = 1$.
#
# A network ending in a loss $L$ (one number) has, for its input or any of its
# weights, the Jacobian $J_L\, J_{f_n} \cdots J_{f_1}$, whose first factor
# $J_L$ is a single row. Reverse mode multiplies this product from the left:
# every step is a row vector times a matrix, $v^\top J$, a
# **vector-Jacobian product** (VJP), and the result is again a row vector.
# That is exactly what a backward function computes: given `dout`, the
# gradient of the loss with respect to its output ($v$), it returns the
# gradient with respect to its input, $v^\top J$, without ever writing $J$
# down. (For an elementwise function $J$ is diagonal, and the VJP is
# `dout * f'(z)`; for a layer with a million inputs and outputs, $J$ would have
# $10^{12}$ entries.) Forward mode multiplies from the right, $J\,v$, a
# **Jacobian-vector product**: one input direction $v$ per sweep.
#
# A convention makes the shapes work out: **a gradient has the shape of its
# variable**. $L$ is one number, so $\partial L / \partial W$ holds one number
# per entry of $W$, arranged like $W$; a backward function takes `dout` of the
# shape of its output and returns arrays of the shapes of its inputs. A
# gradient of the wrong shape is certainly wrong, a free first check. Below,
# the Jacobian of $f(x) = \tanh(Ax)$, from 3 numbers to 2, is computed row by
# row from central differences, and `dout @ J` agrees with
# `numerical_vjp(f, x, dout)`, the gradient of `sum(dout * f(x))`.

# %%
A = np.array([[1.0, -2.0, 0.5], [0.3, 0.8, -1.0]])
f = lambda x: np.tanh(A @ x)                      # from R^3 to R^2
x0 = np.array([0.2, -0.1, 0.4])
J = np.stack([numerical_vjp(f, x0, row) for row in np.eye(2)])  # row i: the gradient of f_i
dout = np.array([1.5, -0.5])
print("J, of shape", J.shape, "\n", J.round(4))
print("dout @ J                  =", (dout @ J).round(6))
print("numerical_vjp(f, x, dout) =", numerical_vjp(f, x0, dout).round(6))

# %% [markdown]
# ## A dense layer, index by index
#
# Index notation turns a matrix gradient into sums of numbers, where the
# scalar chain rule applies. A dense layer computes
# $\text{out} = x W + b$, that is
#
# $$\text{out}_{np} = \sum_i x_{ni} W_{ip} + b_p$$
#
# for example $n$ and output unit $p$. Write
# $D_{np} = \partial L/\partial \text{out}_{np}$ for the incoming gradient
# (`dout`). The loss depends on
# $W_{io}$ through every output, so by the multivariable chain rule
#
# $$\frac{\partial L}{\partial W_{io}} = \sum_{n,p} D_{np}
# \frac{\partial \text{out}_{np}}{\partial W_{io}}
# = \sum_{n,p} D_{np}\, x_{ni}\, \delta_{po} = \sum_n x_{ni} D_{no} = (x^\top D)_{io},$$
#
# where $\delta_{po}$ (the Kronecker delta) is 1 if $p = o$ and 0 otherwise:
# $W_{io}$ reaches only the outputs of unit $o$. In the same way
#
# $$\frac{\partial L}{\partial x_{ni}} = \sum_p D_{np} W_{ip} = (D\, W^\top)_{ni},
# \qquad \frac{\partial L}{\partial b_o} = \sum_n D_{no}.$$
#
# The shapes agree with the convention: $x^\top D$ is
# $(D_{in}, N)(N, D_{out})$, the shape of $W$, and $D\, W^\top$ the shape of
# $x$. The sums over $n$ are fan-out again: every example uses the same $W$
# and $b$, so their gradients add up over the batch. And $\mathrm{d}x$ and
# $\mathrm{d}W$ are each a matrix product as large as the forward pass's
# $xW$: the backward pass of a dense layer costs about **twice** its forward
# pass. `check_vjp` confirms the three formulas against central differences.

# %%
rng = np.random.default_rng(1)
x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
print("dx, dW and db agree with central differences:",
      check_vjp(lambda x, W, b: x @ W + b, lambda D: (D @ W.T, x.T @ D, D.sum(axis=0)),
                {"x": x, "W": W, "b": b}))

# %% [markdown]
# ## What a gradient costs
#
# Here are the three ways to the gradient of a loss with respect to $P$
# weights, on a network with $P = 10\,990$ weights (layers of 20, 100, 80 and
# 10 units, $\tanh$ between them, a batch of 32 examples):
#
# - **finite differences**: two evaluations of the loss per weight, $2P$
#   forward passes;
# - **forward mode** (`dl.jvp`): one sweep gives one directional derivative
#   $v \cdot \nabla L$, so the whole gradient takes $P$ sweeps, one per weight;
# - **reverse mode** (backpropagation): one forward pass that stores the
#   intermediate results, then one backward pass that costs about two forward
#   passes (one matrix product for $\mathrm{d}W$ and one for $\mathrm{d}x$ per
#   layer).
#
# The cell counts the evaluations, counts the multiply-adds of the matrix
# products, and times finite differences against one backward pass. The
# timings vary from run to run and machine to machine, so it prints only how
# they compare.

# %%
import time

rng = np.random.default_rng(0)
sizes = [20, 100, 80, 10]
X, Y = rng.standard_normal((32, sizes[0])), rng.integers(0, sizes[-1], 32)
params = []
for m, n in zip(sizes, sizes[1:]):
    params += [rng.standard_normal((m, n)) * np.sqrt(1 / m), np.zeros(n)]
shapes = [p.shape for p in params]
ends = np.cumsum([0] + [p.size for p in params])  # where each array sits in one flat vector
P = ends[-1]


def network(*ps):
    """The loss, as Tensors (for the backward pass and for dl.jvp)."""
    h = dl.Tensor(X)
    for i in range(0, len(ps), 2):
        h = dl.nn.linear(h, ps[i], ps[i + 1])
        h = h.tanh() if i < len(ps) - 2 else h
    return dl.nn.cross_entropy(h, Y)


evaluations = 0


def loss_of(w):
    """The same loss of all the weights in one flat vector, in plain numpy, counting its calls."""
    global evaluations
    evaluations += 1
    ps = [w[i:j].reshape(s) for i, j, s in zip(ends, ends[1:], shapes)]
    h = X
    for i in range(0, len(ps), 2):
        h = h @ ps[i] + ps[i + 1]
        h = np.tanh(h) if i < len(ps) - 2 else h
    s = h - h.max(axis=1, keepdims=True)
    return np.mean(np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(Y)), Y])


start = time.perf_counter()
by_differences = numerical_grad(loss_of, np.concatenate([p.ravel() for p in params]))
seconds_differences = time.perf_counter() - start
seconds_backward = np.inf
for _ in range(5):  # the best of five: one run can be slowed by whatever else the machine does
    start = time.perf_counter()
    leaves = [dl.Tensor(p, requires_grad=True) for p in params]
    network(*leaves).backward()
    seconds_backward = min(seconds_backward, time.perf_counter() - start)
by_backprop = np.concatenate([t.grad.ravel() for t in leaves])

forward_products = sum(m * n for m, n in zip(sizes, sizes[1:]))  # x @ W, per example
backward_products = forward_products + sum(
    m * n for m, n in zip(sizes[1:], sizes[2:])
)  # dW; dx but the first
print(f"P = {P:,} weights")
print(
    f"{'finite differences':20s} {evaluations:,} evaluations of the loss "
    "(2P, and one to check its output)"
)
print(f"{'forward mode':20s} {P:,} sweeps of dl.jvp, one per weight")
print(f"{'reverse mode':20s} 1 forward pass + 1 backward pass")
print(f"multiply-adds, backward pass / forward pass: {backward_products / forward_products:.2f}")
print("the two gradients agree:", np.allclose(by_differences, by_backprop, rtol=1e-5, atol=1e-9))
print(
    "finite differences took over 100 times as long as the backward pass:",
    seconds_differences > 100 * seconds_backward,
)

tangents = [np.zeros(s) for s in shapes]
tangents[0][3, 7] = 1.0  # the direction of one weight, W1[3, 7]
_, one = dl.jvp(network, params, tangents)
print(
    f"forward mode, one sweep: dL/dW1[3, 7] = {one:.6f}; reverse mode: {leaves[0].grad[3, 7]:.6f}"
)
v = [rng.standard_normal(s) for s in shapes]
_, along_v = dl.jvp(network, params, v)
print(
    "forward mode along a random direction v gives v . gradient:",
    np.isclose(along_v, sum(np.sum(t.grad * u) for t, u in zip(leaves, v))),
)


# %% [markdown]
# ## Softmax and its Jacobian
#
# A classifier's last layer gives one score per class, the **logits**
# $z_1, \dots, z_C$. The **softmax** turns them into probabilities, positive
# and summing to 1:
#
# $$p_i = \operatorname{softmax}(z)_i = \frac{e^{z_i}}{\sum_j e^{z_j}} .$$
#
# Adding the same number to every logit changes nothing (it multiplies the
# numerator and the denominator by the same factor), so subtracting the largest
# logit first keeps every exponential at most 1 and the softmax finite for
# logits in the thousands. The true class $k$ is written as a **one-hot**
# vector, $\operatorname{onehot}(k)_i = \delta_{ik}$: 1 at position $k$, 0
# elsewhere (class 2 of 4 is $(0, 0, 1, 0)$, counting from 0).
#
# Every $p_i$ depends on every $z_j$ through the sum in the denominator. The
# quotient rule gives the Jacobian:
#
# $$\frac{\partial p_i}{\partial z_j} =
# \frac{\delta_{ij} e^{z_i} \sum_l e^{z_l} - e^{z_i} e^{z_j}}{\left(\sum_l e^{z_l}\right)^2}
# = p_i\,(\delta_{ij} - p_j).$$
#
# The **cross-entropy** loss of the true class $k$ is $L = -\log p_k$, so
# $\partial L/\partial p_i = -\operatorname{onehot}(k)_i / p_i$, and the
# vector-Jacobian product through the softmax collapses:
#
# $$\frac{\partial L}{\partial z_j} = \sum_i \frac{-\operatorname{onehot}(k)_i}{p_i}\,
# p_i(\delta_{ij} - p_j)
# = -\operatorname{onehot}(k)_j + p_j \sum_i \operatorname{onehot}(k)_i = p_j -
# \operatorname{onehot}(k)_j .$$
#
# The $p_i$ cancel: no division by a probability that may be tiny. This is why
# softmax and cross-entropy are differentiated as one step (Exercise
# 1.3.3), and why the gradient, $p - \operatorname{onehot}$, is so simple.

# %% locked="softmax"
def softmax(z):
    """exp(z) / sum(exp(z)) over the last axis, shifted by the largest logit (never overflows)."""
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# %%
z, k = np.array([2.0, -1.0, 0.5, 1.0]), 2
print("softmax(z)             =", softmax(z).round(6), " sum:", softmax(z).sum().round(6))
print("onehot(2)              =", np.eye(4)[k])
print("numerical dL/dz        =", numerical_grad(lambda u: -np.log(softmax(u)[k]), z).round(6))
print("softmax(z) - onehot(2) =", (softmax(z) - np.eye(4)[k]).round(6))


# %% [markdown] exercise="1.2.7" id="softmax_jacobian" points=3
# ### Exercise: the softmax Jacobian
#
# Write `softmax_jacobian(z)` for a vector `z` of $C$ logits, returning the
# $C \times C$ matrix `J` with `J[i, j]` $= \partial p_i / \partial z_j$. Use
# `softmax` above (or shift the logits yourself), so that it works without
# warnings for logits in the thousands. No loop is needed: look up `np.diag`
# and `np.outer`. The tests compare your matrix with a Jacobian from central
# differences, row by row.

# %% answer gradient=true
def softmax_jacobian(z):
    """z (C,) -> J (C, C) with J[i, j] = d softmax(z)_i / d z_j."""
    ### BEGIN SOLUTION
    p = softmax(z)
    return np.diag(p) - np.outer(p, p)
    ### END SOLUTION


# %% tests
def numerical_jacobian(f, z):
    """J[i, j] = d f(z)_i / d z_j by central differences: row i is the gradient of f(z)_i."""
    return np.stack([numerical_vjp(f, z, row) for row in np.eye(len(f(z)))])


def check_softmax_jacobian(z):
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            J = softmax_jacobian(z.copy())
    except FloatingPointError as error:
        raise CheckError(
            f"softmax_jacobian(z) warns for z from {z.min():.4g} to {z.max():.4g}: {error}."
            "\n  hint: exp(z) overflows for z > 709: compute p with softmax(z), which "
            "subtracts the largest logit first"
        ) from None
    expected = numerical_jacobian(softmax, z)
    assert_close(
        J,
        expected,
        atol=1e-7,
        name=f"softmax_jacobian(z) for z = {np.round(z, 3)}",
        mistakes={
            "p_i depends on every z_j, through the sum in the denominator: J is not "
            "diagonal, and its diagonal is not p": np.diag(softmax(z)),
            "the off-diagonal entries are not zero: p_i depends on every z_j, "
            "through the sum in the denominator": np.diag(np.diag(expected)),
            "return the whole C x C matrix J[i, j] = d p_i / d z_j, not only its diagonal": np.diag(
                expected
            ),
        },
    )


check_softmax_jacobian(np.array([1.0, 2.0, 0.5]))
check_softmax_jacobian(np.array([1000.0, 999.0, -1000.0, 0.0]))
check_softmax_jacobian(np.array([0.3]))
print("softmax_jacobian: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1207)
for c in [2, 5, 8]:
    check_softmax_jacobian(rng.standard_normal(c) * 3)
check_softmax_jacobian(rng.standard_normal(6) * 3000)
### END HIDDEN TESTS

# %% [markdown] appendix
# $J_{ij} = p_i(\delta_{ij} - p_j) = p_i \delta_{ij} - p_i p_j$: the first term is
# the diagonal matrix `np.diag(p)`, the second the outer product
# `np.outer(p, p)`, whose entry $(i, j)$ is $p_i p_j$. Taking $p$ from `softmax`,
# which subtracts the largest logit, keeps every exponential at most 1, so
# logits in the thousands give no overflow. $J$ is symmetric, and each of its
# rows sums to 0, because the probabilities always sum to 1.

# %% [markdown]
# ## Gradient checking as a skill
#
# Every gradient in this course is checked the same way: computed by hand,
# then compared with central differences. A good check compares the two with a
# **relative error**,
#
# $$\text{relative error} = \max_i \frac{|a_i - n_i|}{\max(|a_i| + |n_i|,\ 10^{-8})},$$
#
# because an absolute difference of $10^{-4}$ is excellent for a gradient of
# size $10^4$ and hopeless for one of size $10^{-4}$ (the floor $10^{-8}$ keeps
# two values that are both practically zero from counting as different). In
# float64, a correct gradient checked with $h \approx 10^{-5}$ usually has a
# relative error below $10^{-7}$; an error near 1 is a mistake.
#
# Two things can fool a check, and the next cell shows both:
#
# - **Kinks.** $\max(x, 0)$ or $|x|$ have no derivative at 0. Within $h$ of
#   a kink, the central difference straddles it and returns something between
#   the two slopes, which matches neither. Check at points away from kinks
#   (random inputs rarely land within $10^{-5}$ of one).
# - **float32.** With about 7 significant digits, $x + h$ with $h = 10^{-5}$
#   is itself off by up to 1% of $h$, and $f(x+h) - f(x-h)$ loses most of its
#   digits: a central difference taken in float32 is off by percents. Even an
#   exact formula evaluated in float32 agrees with float64 only to 4 to 7
#   digits. Numerical gradients are therefore computed in float64, whatever
#   the dtype of the array, and a float32 gradient is checked with a looser
#   tolerance (or recomputed in float64).

# %%
def verdict(analytical, numerical):
    error = rel_error(analytical, numerical)
    return (
        "passes"
        if error < 1e-7
        else f"fails (relative error {error:.2g})"
        if error > 0.1
        else "fails"
    )


relu_sum, relu_grad = lambda v: np.sum(np.maximum(v, 0)), lambda v: (v > 0) * 1.0
g = lambda v: np.tanh(v**2)  # elementwise, as at the top of the notebook
g_prime = lambda v: (1 - np.tanh(v**2) ** 2) * 2 * v
w, near = np.array([0.3, -1.2, 2.0]), np.array([0.3, -1.2, 3e-6])
w32, h32 = w.astype(np.float32), np.float32(1e-5)
cases = [
    ("ReLU, away from its kink", relu_grad(w), numerical_grad(relu_sum, w, eps=1e-5)),
    ("ReLU, 3e-6 from its kink", relu_grad(near), numerical_grad(relu_sum, near, eps=1e-5)),
    ("tanh(x^2), float64", g_prime(w), numerical_grad(lambda v: np.sum(g(v)), w, eps=1e-5)),
    (
        "tanh(x^2), central difference in float32",
        g_prime(w),
        (g(w32 + h32) - g(w32 - h32)) / (2 * h32),
    ),
    ("tanh(x^2), exact formula in float32", g_prime(w32), g_prime(w)),
]
for name, analytical, numerical in cases:
    print(f"{name:42s} a check at relative error 1e-7 {verdict(analytical, numerical)}")


# %% [markdown] exercise="1.2.8" id="numerical_gradient" points=3
# ### Exercise: numerical gradients of arrays
#
# Write `numerical_gradient(f, x, h=1e-5)`: the gradient of a function `f`
# that takes an array of the shape of `x` and returns one number, by central
# differences, one element at a time (two evaluations of `f` per element). `x`
# may have any shape (0-d too) and be float32 or float64. Return a float64
# array of the shape of `x`, and leave `x` as it was: work on a float64 copy,
# move one element by $\pm h$, evaluate, and put it back. Also write
# `relative_error(a, b)`, the formula above: the largest elementwise
# $|a - b| / \max(|a| + |b|, 10^{-8})$, a number, without warnings when both
# are zero.

# %% answer gradient=true
def numerical_gradient(f, x, h=1e-5):
    """Central differences of the scalar function f at the array x, one element at a time."""
    ### BEGIN SOLUTION
    x = np.array(x, dtype=np.float64)  # a float64 copy: the caller's x never changes
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f(x)
        x[i] = old - h
        minus = f(x)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad
    ### END SOLUTION


def relative_error(a, b):
    """The largest elementwise |a - b| / max(|a| + |b|, 1e-8)."""
    ### BEGIN SOLUTION
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8))
    ### END SOLUTION


# %% tests
mix = lambda v: np.sum(np.tanh(v) * np.roll(v, 1))  # every element interacts with another
cube = lambda v: np.sum(v**3)  # separable: element i's slope depends on v_i only


def check_numerical_gradient(f, x, name, h=None, mistakes=None):
    before = x.copy()
    got = numerical_gradient(f, x) if h is None else numerical_gradient(f, x, h=h)
    assert_close(
        x,
        before,
        name=f"x after numerical_gradient({name}, x) (it must leave x as it was: "
        "put each element back after moving it, or work on a copy)",
    )
    expected = numerical_grad(f, before, eps=1e-5 if h is None else h)
    try:
        assert_close(
            got,
            expected,
            atol=1e-9,
            rtol=1e-8,
            mistakes=mistakes,
            name=f"numerical_gradient({name}, x) for x of shape {x.shape}, {x.dtype}",
        )
    except CheckError as error:
        if x.dtype == np.float32 and np.shape(got) == x.shape and rel_error(got, expected) < 0.5:
            raise CheckError(
                f"{error}\n  hint: x is float32, which holds about 7 significant digits: x + h is "
                "not exactly h away from x, and f's values lose their last digits. Work on a "
                "float64 copy, x.astype(np.float64)"
            ) from None
        raise


rng = np.random.default_rng(0)
x = rng.uniform(-2, 2, 4)
check_numerical_gradient(
    cube,
    x,
    "cube",
    h=1e-3,
    mistakes={
        "use the central difference (f(x + h) - f(x - h)) / (2h), "
        "not a forward difference": numerical_grad(cube, x + 5e-4, eps=5e-4),
        "divide by 2h: the points x + h and x - h are 2h apart": 2
        * numerical_grad(cube, x, eps=1e-3),
        "use the step h you are given": numerical_grad(cube, x, eps=1e-5),
    },
)
check_numerical_gradient(mix, rng.standard_normal(3), "mix")
check_numerical_gradient(mix, rng.standard_normal((2, 2)).astype(np.float32), "mix")
check_numerical_gradient(lambda v: np.sin(v) * v, np.array(0.8), "sin(x) x")

a, b = np.array([1.0, -2.0, 1e-3]), np.array([1.1, -2.0, 0.0])
assert_close(
    relative_error(a.copy(), b.copy()),
    rel_error(a, b),
    name="relative_error(a, b)",
    rtol=1e-9,
    mistakes={
        "the largest elementwise error, not their mean": np.mean(
            np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)
        )
    },
)
try:
    with np.errstate(divide="raise", invalid="raise"):
        zero = relative_error(np.zeros(3), np.zeros(3))
except FloatingPointError as error:
    raise CheckError(
        f"relative_error(0, 0) warns: {error}.\n  hint: floor the denominator at 1e-8, "
        "np.maximum(|a| + |b|, 1e-8)"
    ) from None
assert_close(zero, 0.0, name="relative_error of two arrays of zeros")
print("numerical_gradient and relative_error: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1208)
for shape in [(), (5,), (3, 2)]:
    check_numerical_gradient(mix, rng.standard_normal(shape), "mix")
    check_numerical_gradient(mix, rng.standard_normal(shape).astype(np.float32), "mix")
x = rng.uniform(-2, 2, (2, 3))
check_numerical_gradient(
    cube,
    x,
    "cube",
    h=1e-3,
    mistakes={
        "use the central difference (f(x + h) - f(x - h)) / (2h), "
        "not a forward difference": numerical_grad(cube, x + 5e-4, eps=5e-4),
        "divide by 2h: the points x + h and x - h are 2h apart": 2
        * numerical_grad(cube, x, eps=1e-3),
    },
)
a, b = rng.standard_normal(6), rng.standard_normal(6)
assert_close(
    relative_error(a.copy(), b.copy()), rel_error(a, b), name="relative_error(a, b)", rtol=1e-9
)
assert_close(relative_error(a.copy(), a.copy()), 0.0, name="relative_error(a, a)")
### END HIDDEN TESTS

# %% [markdown] appendix
# `np.array(x, dtype=np.float64)` makes a float64 copy, so the caller's array
# never changes and float32 inputs are moved and evaluated with 16 digits.
# `np.ndindex` visits every index of any shape (the single index `()` of a 0-d
# array too); each element is moved by $+h$ and $-h$, `f` evaluated, and the
# element put back before the next, so each entry is the central difference
# along one coordinate. That costs two evaluations per element, $2P$ for $P$
# numbers, which is why this is a check and not a way to train. The relative
# error divides by $|a| + |b|$ floored at $10^{-8}$: two zeros give 0 rather
# than 0/0.

# %% [markdown] exercise="1.2.9" id="two_layer_backward" points=2
# ### Exercise: find the bug
#
# Below is a small network (a $\tanh$ hidden layer and a linear output layer)
# and a backward pass for it, `two_layer_backward_given`, written by someone
# in a hurry: it returns the five gradients of `sum(dout * two_layer(...))`,
# but one line is wrong. The cell after it checks each gradient against
# central differences, in **backward order**, the order in which the backward
# pass computes them. The gradients computed before the mistake agree with
# the numerical ones, and every gradient computed from the mistaken value on
# disagrees. So the first gradient that disagrees tells you where to look: the
# mistake is in a step between it and the last gradient that agrees.
#
# Find the wrong line, then write the corrected backward pass as
# `two_layer_backward` in the answer cell (copy the given function, rename it,
# fix the line). Check your version the same way,
# `check_in_backward_order(two_layer_backward)`, before you run the tests.

# %% locked="two_layer"
def two_layer(x, W1, b1, W2, b2):
    """x (N, D) -> tanh(x @ W1 + b1) @ W2 + b2, of shape (N, C)."""
    return np.tanh(x @ W1 + b1) @ W2 + b2


def two_layer_backward_given(dout, x, W1, b1, W2, b2):
    """The gradients of sum(dout * two_layer(x, W1, b1, W2, b2)), one line wrong."""
    z = x @ W1 + b1
    h = np.tanh(z)
    dW2 = h.T @ dout
    db2 = dout.sum(axis=0)
    dh = dout @ W2.T
    dz = dh * (1 - z ** 2)
    dW1 = x.T @ dz
    db1 = dz.sum(axis=0)
    dx = dz @ W1.T
    return dx, dW1, db1, dW2, db2


# %%
def check_in_backward_order(backward):
    rng = np.random.default_rng(3)
    inputs = {
        "x": rng.standard_normal((5, 3)),
        "W1": rng.standard_normal((3, 4)),
        "b1": rng.standard_normal(4),
        "W2": rng.standard_normal((4, 2)),
        "b2": rng.standard_normal(2),
    }
    dout = rng.standard_normal((5, 2))
    grads = dict(zip(inputs, backward(dout, **inputs)))
    for name in ["W2", "b2", "W1", "b1", "x"]:  # the order in which backward computes them
        numerical = numerical_vjp(lambda v: two_layer(**{**inputs, name: v}), inputs[name], dout)
        error = rel_error(grads[name], numerical)
        print(
            f"d{name:3s}", "agrees" if error < 1e-7 else f"DISAGREES (relative error {error:.2f})"
        )


check_in_backward_order(two_layer_backward_given)


# %% answer gradient=true
def two_layer_backward(dout, x, W1, b1, W2, b2):
    """The gradients of sum(dout * two_layer(x, W1, b1, W2, b2)) -> (dx, dW1, db1, dW2, db2)."""
    ### BEGIN SOLUTION
    z = x @ W1 + b1
    h = np.tanh(z)
    dW2 = h.T @ dout
    db2 = dout.sum(axis=0)
    dh = dout @ W2.T
    dz = dh * (1 - h ** 2)
    dW1 = x.T @ dz
    db1 = dz.sum(axis=0)
    dx = dz @ W1.T
    return dx, dW1, db1, dW2, db2
    ### END SOLUTION


# %% tests
def check_two_layer_backward(n, d, hidden, c, seed):
    rng = np.random.default_rng(seed)
    inputs = {
        "x": rng.standard_normal((n, d)),
        "W1": rng.standard_normal((d, hidden)),
        "b1": rng.standard_normal(hidden),
        "W2": rng.standard_normal((hidden, c)),
        "b2": rng.standard_normal(c),
    }
    dout = rng.standard_normal((n, c))
    grads = two_layer_backward(dout.copy(), *(v.copy() for v in inputs.values()))
    if not isinstance(grads, (tuple, list)) or len(grads) != 5:
        raise CheckError(
            "two_layer_backward must return five arrays: dx, dW1, db1, dW2, db2, in that order"
        )
    given = two_layer_backward_given(dout, **inputs)
    if all(np.shape(g) == np.shape(w) and np.allclose(g, w) for g, w in zip(grads, given)):
        raise CheckError(
            "two_layer_backward returns what two_layer_backward_given returns, mistake "
            "included.\n  hint: dW2 and db2 agree with numerical gradients and dW1 is the first "
            "that disagrees, so the mistake is in dh or dz: the step through the tanh needs "
            "tanh'(z) = 1 - tanh(z)^2, that is 1 - h^2"
        )
    grads = dict(zip(inputs, grads))
    agree = []
    for name in ["W2", "b2", "W1", "b1", "x"]:  # backward order
        numerical = numerical_vjp(lambda v: two_layer(**{**inputs, name: v}), inputs[name], dout)
        try:
            assert_close(
                grads[name],
                numerical,
                atol=1e-7,
                rtol=1e-5,
                name=f"d{name} of two_layer_backward for x {(n, d)}, W1 {(d, hidden)}, "
                f"W2 {(hidden, c)}",
            )
        except CheckError as error:
            if not agree:
                raise
            raise CheckError(
                f"{error}\n  hint: {', '.join(agree)} agree with numerical gradients, so the "
                f"mistake is in a step after them in backward order, on the way to d{name}"
            ) from None
        agree.append(f"d{name}")


check_two_layer_backward(5, 3, 4, 2, seed=0)
print("two_layer_backward: visible tests passed")
### BEGIN HIDDEN TESTS
for n, d, hidden, c, seed in [(1, 2, 3, 2, 1209), (8, 4, 4, 3, 1210), (6, 5, 7, 1, 1211)]:
    check_two_layer_backward(n, d, hidden, c, seed)
### END HIDDEN TESTS

# %% [markdown] appendix
# The gradient check finds $\mathrm{d}W_2$ and $\mathrm{d}b_2$ right and
# $\mathrm{d}W_1$ wrong, so the mistake is in $\mathrm{d}h$ or $\mathrm{d}z$.
# $\mathrm{d}h = \text{dout}\, W_2^\top$ is the dense layer's input gradient;
# $\mathrm{d}z$ multiplies it by $\tanh'(z) = 1 - \tanh^2(z) = 1 - h^2$. The given
# code wrote $1 - z^2$, the derivative's formula applied to the input instead
# of the output (the mistake Exercise 1.2.2 warns of, as $1 - x^2$). With
# $1 - h^2$, every gradient agrees.
