"""Source of solutions/ch01/02_chain_rule.ipynb (section 1.2)."""

from dlcourse.course.authoring import answer, code, md, tests

SETUP = """
import numpy as np
import matplotlib.pyplot as plt

import dlcourse as dl
from dlcourse.testing import CheckError, assert_close, numerical_grad
"""

CELLS = [
    md(r"""
# 1.2 Chain Rule

Training a network means nudging every weight in the direction that lowers
the loss, so we need the derivative of the loss with respect to each weight.
The loss is a long composition of functions — layer after layer — and the
tool for differentiating a composition is the **chain rule** of calculus.
"""),
    code(SETUP, locked="setup"),
    md(r"""
## The chain rule

If $y = f(g(x))$, a small change in $x$ changes $g(x)$ by about $g'(x)$ times
as much, and that change in $g$ changes $f$ by about $f'(g(x))$ times as much.
The two rates multiply:

$$\frac{\mathrm{d}y}{\mathrm{d}x} = f'(g(x)) \cdot g'(x) \tag{1.1}$$

Note where each derivative is evaluated: $g'$ at $x$, but $f'$ at $g(x)$, the
point that $f$ actually receives. For example, with $y = \tanh(x^2)$ we have
$g(x) = x^2$, $g'(x) = 2x$, $f = \tanh$ and $f'(u) = 1 - \tanh^2(u)$, so

$$\frac{\mathrm{d}y}{\mathrm{d}x} = \bigl(1 - \tanh^2(x^2)\bigr) \cdot 2x .$$
"""),
    code(r"""
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
"""),
    md(r"""
## Checking derivatives numerically

A derivative is a limit of difference quotients, so we can approximate it
with a small step $h$. Taylor's expansion around $x$,

$$f(x \pm h) = f(x) \pm h f'(x) + \frac{h^2}{2} f''(x) \pm \frac{h^3}{6} f'''(x) + \dots,$$

tells how far off each quotient is. The **forward difference**
$\frac{f(x+h) - f(x)}{h} = f'(x) + \frac{h}{2} f''(x) + \dots$ has an error
proportional to $h$. In the **central difference**

$$\frac{f(x+h) - f(x-h)}{2h} = f'(x) + \frac{h^2}{6} f'''(x) + \dots$$

the even-order terms, $f(x)$ and $\frac{h^2}{2} f''(x)$ and so on, are the
same in both expansions and cancel, so the error starts at
$\frac{h^2}{6} f'''(x)$ and shrinks like $h^2$: ten times smaller $h$, a
hundred times smaller error — until $h$ is so small that rounding errors of
floating-point numbers (about $10^{-16}$ relative) take over. That is why
gradient checks use $h \approx 10^{-5}$ to $10^{-6}$. The slopes of the two
lines in the log-log plot below are the powers of $h$.
"""),
    code(r"""
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
"""),
    md(r"""
`dlcourse.testing.numerical_grad` computes central differences for every
element of an array, and `dlcourse.gradcheck.gradcheck` compares them with
the engine's gradients — the same check the autograder applies to your code.
"""),
    code(r"""
w = np.array([0.3, -1.2, 2.0])
loss = lambda v: np.sum(np.tanh(v ** 2))
print("numerical:", numerical_grad(loss, w).round(6))
print("analytic: ", ((1 - np.tanh(w ** 2) ** 2) * 2 * w).round(6))
"""),
    md(r"""
## Long chains and vanishing gradients

Applying (1.1) again and again to a chain $y = f_n(\dots f_2(f_1(x)))$ gives a
**product** of derivatives, one per link. The sigmoid's derivative is at most
$1/4$, so the derivative of a chain of $n$ sigmoids is at most $4^{-n}$: it
**vanishes** exponentially with depth. The first layers of a deep sigmoid
network receive almost no gradient and barely learn; this is one reason deep
networks use ReLU, whose slope is exactly 1 wherever it is active.

The plot also follows a chain of $\tanh$s from the same start. Its line falls
far more slowly: $\tanh$ has slope 1 at 0 (four times the sigmoid's best),
and the values passed along the chain drift towards 0, where each factor
$1 - \tanh^2$ is close to 1. The derivative still shrinks, but like a power
of $n$ rather than exponentially. That holds only near 0: a few units away
from 0, $\tanh$ flattens out (saturates) like the sigmoid, and its slope is
tiny there (0.01 at 3).
"""),
    code(r"""
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
"""),
    md(r"""
## Exercises

### Exercise 1: the central difference (2 points)

Write `numerical_derivative(f, x, h=1e-5)` returning the central difference
$\frac{f(x+h) - f(x-h)}{2h}$. `f` works elementwise on numpy arrays, and `x`
may be a number or an array: return the derivative at every element.
"""),
    answer("numerical_derivative", r'''
def numerical_derivative(f, x, h=1e-5):
    """Central difference of an elementwise function f at x (a number or an array)."""
    ### BEGIN SOLUTION
    return (f(x + h) - f(x - h)) / (2 * h)
    ### END SOLUTION
'''),
    tests("test_numerical_derivative", 2, r'''
PRECEDENCE = ("write / (2 * h): / and * bind equally tightly and run left to right, so "
              "(f(x+h) - f(x-h)) / 2*h means ((f(x+h) - f(x-h)) / 2) * h")
x = np.array([0.0, 0.5, 1.0])
assert_close(numerical_derivative(np.sin, x.copy()), np.cos(x), name="numerical_derivative(np.sin, x)",
             atol=1e-9, rtol=1e-9, mistakes={"use the central difference (f(x+h) - f(x-h)) / (2h)":
                                  (np.sin(x + 1e-5) - np.sin(x)) / 1e-5,
                                  "divide by 2h: the points x+h and x-h are 2h apart": 2 * np.cos(x),
                                  PRECEDENCE: (np.sin(x + 1e-5) - np.sin(x - 1e-5)) / 2 * 1e-5})
print("numerical_derivative: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1201)
for shape in [(), (4,), (3, 2)]:
    x = rng.uniform(-2, 2, shape)
    cube = lambda u: u ** 3
    h = 1e-3  # the central difference of u^3 is exactly 3u^2 + h^2
    assert_close(numerical_derivative(cube, np.copy(x), h=h), 3 * x ** 2 + h ** 2, atol=1e-9, rtol=1e-9,
                 name=f"numerical_derivative(u**3, x, h=1e-3) for x of shape {np.shape(x)}",
                 mistakes={"use the step h you are given": 3 * x ** 2 + 1e-10,
                           "divide by 2h: the points x+h and x-h are 2h apart": 2 * (3 * x ** 2 + h ** 2),
                           PRECEDENCE: (3 * x ** 2 + h ** 2) * h * h})
    assert_close(numerical_derivative(np.exp, np.copy(x)), np.exp(x), atol=1e-8, rtol=1e-8,
                 name=f"numerical_derivative(np.exp, x) for x of shape {np.shape(x)}")
### END HIDDEN TESTS
'''),
    md(r"""
### Exercise 2: derivatives of activations (2 points)

Write `sigmoid_prime(x)` and `tanh_prime(x)`, the derivatives of
$\sigma(x) = 1/(1 + e^{-x})$ and $\tanh(x)$, elementwise. Both have a neat
form in terms of the function itself: $\sigma' = \sigma\,(1 - \sigma)$ and
$\tanh' = 1 - \tanh^2$. They must work without overflow or warnings for
$|x|$ up to 1000 (`np.tanh` never overflows, and
$\sigma(x) = \frac{1}{2}(1 + \tanh(x/2))$).
"""),
    answer("activation_derivatives", r'''
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
''', gradient=True),
    tests("test_activation_derivatives", 2, r'''
x = np.array([-1.0, 0.0, 2.0])
s = 1 / (1 + np.exp(-x))
assert_close(sigmoid_prime(x.copy()), numerical_grad(lambda u: np.sum(1 / (1 + np.exp(-u))), x),
             name="sigmoid_prime(x)", mistakes={"sigma' = sigma(x) (1 - sigma(x)), not sigma(x) (1 - x)": s * (1 - x)})
assert_close(tanh_prime(x.copy()), numerical_grad(lambda u: np.sum(np.tanh(u)), x), name="tanh_prime(x)",
             mistakes={"tanh' = 1 - tanh(x)^2, not 1 - x^2": 1 - x ** 2})

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
            f"{OVERFLOW_HINTS[name]}") from None

far = np.array([-1000.0, 1000.0])
for name, derivative in [("sigmoid_prime", sigmoid_prime), ("tanh_prime", tanh_prime)]:
    assert_close(without_overflow(name, derivative, far), [0.0, 0.0], name=f"{name}([-1000, 1000])")
print("sigmoid_prime and tanh_prime: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1202)
for shape in [(5,), (3, 4)]:
    x = rng.uniform(-6, 6, shape)
    s = 0.5 * (1 + np.tanh(0.5 * x))
    assert_close(sigmoid_prime(x.copy()), s * (1 - s), name=f"sigmoid_prime(x) for x of shape {shape}",
                 atol=1e-10)
    assert_close(tanh_prime(x.copy()), 1 - np.tanh(x) ** 2, name=f"tanh_prime(x) for x of shape {shape}",
                 atol=1e-10)
x = rng.uniform(-1000, 1000, (4, 5))
s = 0.5 * (1 + np.tanh(0.5 * x))
assert_close(without_overflow("sigmoid_prime", sigmoid_prime, x), s * (1 - s), atol=1e-12,
             name="sigmoid_prime(x) for x in the hundreds")
assert_close(without_overflow("tanh_prime", tanh_prime, x), 1 - np.tanh(x) ** 2, atol=1e-12,
             name="tanh_prime(x) for x in the hundreds")
### END HIDDEN TESTS
'''),
    md(r"""
### Exercise 3: the chain rule (2 points)

Write `chain_rule(f_prime, g, g_prime)` returning a **function** of `x` that
computes $\frac{\mathrm{d}}{\mathrm{d}x} f(g(x))$ by equation (1.1). All the
functions work elementwise on arrays.
"""),
    answer("chain_rule", r'''
def chain_rule(f_prime, g, g_prime):
    """-> a function x -> d/dx f(g(x)) = f'(g(x)) * g'(x)."""
    ### BEGIN SOLUTION
    def derivative(x):
        return f_prime(g(x)) * g_prime(x)

    return derivative
    ### END SOLUTION
''', gradient=True),
    tests("test_chain_rule", 2, r'''
x = np.array([0.5, 1.0, 2.0])
d = chain_rule(np.cos, lambda u: u ** 2, lambda u: 2 * u)  # d/dx sin(x^2)
assert callable(d), "chain_rule must return a function of x"
assert_close(d(x.copy()), numerical_grad(lambda u: np.sum(np.sin(u ** 2)), x), name="chain_rule(cos, x^2, 2x)(x)",
             mistakes={"evaluate f' at g(x), not at x": np.cos(x) * 2 * x,
                       "multiply by g'(x): (1.1) has two factors": np.cos(x ** 2)})
print("chain_rule: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1203)
cases = [  # name, f', g, g', the exact derivative of f(g(x))
    ("exp(3x)", np.exp, lambda u: 3 * u, lambda u: 3 + 0 * u, lambda u: 3 * np.exp(3 * u)),
    ("tanh(sin x)", lambda u: 1 - np.tanh(u) ** 2, np.sin, np.cos,
     lambda u: (1 - np.tanh(np.sin(u)) ** 2) * np.cos(u)),
    ("log(1 + x^2)", lambda u: 1 / u, lambda u: 1 + u ** 2, lambda u: 2 * u,
     lambda u: 2 * u / (1 + u ** 2)),
]
for name, f_prime, g, g_prime, exact in cases:
    x = rng.uniform(-1.5, 1.5, (4, 3))
    assert_close(chain_rule(f_prime, g, g_prime)(x.copy()), exact(x), atol=1e-9,
                 name=f"the chain rule's derivative of {name}",
                 mistakes={"evaluate f' at g(x), not at x": f_prime(x) * g_prime(x),
                           "multiply by g'(x): (1.1) has two factors": f_prime(g(x))})
### END HIDDEN TESTS
'''),
    md(r"""
### Exercise 4: a chain of any length (2 points)

Write `chain_derivative(fs, f_primes, x)`: the derivative of
$y = f_n(\dots f_2(f_1(x)))$ at `x`, where `fs = [f1, f2, ..., fn]` and
`f_primes` are their derivatives. Apply (1.1) link by link: walk forward
through the chain, keeping the current value and the derivative so far;
each link multiplies the derivative by its own derivative **evaluated at the
value it receives**. For an empty chain ($y = x$), the derivative is 1.
"""),
    answer("chain_derivative", r'''
def chain_derivative(fs, f_primes, x):
    """d/dx fs[-1](...fs[1](fs[0](x))), elementwise."""
    ### BEGIN SOLUTION
    value, derivative = x, np.ones_like(np.asarray(x, dtype=float))
    for f, f_prime in zip(fs, f_primes):
        derivative = derivative * f_prime(value)
        value = f(value)
    return derivative
    ### END SOLUTION
''', gradient=True),
    tests("test_chain_derivative", 2, r'''
x = np.array([0.1, 0.6])
fs = [np.sin, np.exp]            # y = exp(sin(x))
f_primes = [np.cos, np.exp]
assert_close(chain_derivative(fs, f_primes, x.copy()), numerical_grad(lambda u: np.sum(np.exp(np.sin(u))), x),
             name="chain_derivative([sin, exp], [cos, exp], x)",
             mistakes={"evaluate each f' at the value its link receives, not at x":
                       np.cos(x) * np.exp(x),
                       "evaluate each f' at the value its link receives (its input), not at its output":
                       np.cos(np.sin(x)) * np.exp(np.exp(np.sin(x)))})
print("chain_derivative: visible tests passed")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(1204)
sig = lambda u: 0.5 * (1 + np.tanh(0.5 * u))
links = [(np.sin, np.cos), (np.tanh, lambda u: 1 - np.tanh(u) ** 2),
         (sig, lambda u: sig(u) * (1 - sig(u))), (lambda u: u ** 2 + 1, lambda u: 2 * u)]
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
    assert_close(chain_derivative(fs, f_primes, x.copy()), expected, atol=1e-9,
                 name=f"chain_derivative for a chain of {n} functions",
                 mistakes={"evaluate each f' at the value its link receives, not at x": at_x})
empty = chain_derivative([], [], np.array([2.0, 3.0]))
if np.ndim(empty) == 0:  # a single 1 stands for every element
    empty = np.full(2, empty, dtype=float)
assert_close(empty, [1.0, 1.0], name="chain_derivative([], [], x) (the derivative of y = x)")
### END HIDDEN TESTS
'''),
]

EXPLANATIONS = {
    "numerical_derivative": r"""
The central difference evaluates `f` at two points $2h$ apart, symmetric
around `x`; the even-order terms of the two Taylor expansions (among them
$\frac{h^2}{2} f''$) cancel, leaving an error of about $\frac{h^2}{6} f'''$,
of order $h^2$. Because `f` works elementwise, `x + h` shifts every
element at once and the formula gives every element's derivative.
""",
    "activation_derivatives": r"""
With $\sigma(x) = 1/(1 + e^{-x})$, $\sigma'(x) = e^{-x}/(1 + e^{-x})^2 = \sigma(x)(1 - \sigma(x))$.
Computing $\sigma$ as $\frac{1}{2}(1 + \tanh(x/2))$ never overflows. For
$\tanh$, $\frac{d}{dx}\tanh x = 1/\cosh^2 x = 1 - \tanh^2 x$.
""",
    "chain_rule": r"""
Equation (1.1) says the derivative of $f(g(x))$ is $f'$ evaluated at $g(x)$
times $g'$ evaluated at $x$. The answer returns a closure that remembers
`f_prime`, `g` and `g_prime` and applies exactly that product to any `x`.
""",
    "chain_derivative": r"""
Walking forward, `value` is the input the current link receives and
`derivative` is $\mathrm{d}\,\text{value}/\mathrm{d}x$ so far. Each link
multiplies it by its own derivative at `value` — equation (1.1) with
$g$ being the chain so far — and then moves `value` one link on. Starting
from 1 handles the empty chain.
""",
}

EX1 = "Exercise 1: the central difference (2 points)"
EX2 = "Exercise 2: derivatives of activations (2 points)"
EX3 = "Exercise 3: the chain rule (2 points)"
EX4 = "Exercise 4: a chain of any length (2 points)"

# term -> the headings of the sections that treat it (one or several)
INDEX = {
    "chain rule": ["The chain rule", EX3, EX4],
    "derivative": ["The chain rule", EX2],
    "composition of functions": ["The chain rule", EX4],
    "numerical gradient": ["Checking derivatives numerically", EX1],
    "Taylor expansion": "Checking derivatives numerically",
    "forward difference": "Checking derivatives numerically",
    "central difference": ["Checking derivatives numerically", EX1],
    "gradient check": "Checking derivatives numerically",
    "vanishing gradients": "Long chains and vanishing gradients",
    "sigmoid": ["Long chains and vanishing gradients", EX2],
    "tanh": ["Long chains and vanishing gradients", EX2],
    "numerical overflow": EX2,
}
