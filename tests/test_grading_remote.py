"""The channel between the grader and a student's kernel: data crosses it,
code and the grader's objects do not.

The kernel's end runs in a thread here (in grading it is the confined kernel),
so these tests are fast and check the protocol itself.
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from dlcourse.course.grading import executor, remote


@pytest.fixture
def pair() -> Iterator[tuple[remote.Channel, dict[str, Any]]]:
    """The grader's channel and the 'kernel's' namespace behind it."""
    ours, theirs = socket.socketpair()
    namespace: dict[str, Any] = {}
    kernel = remote.Channel(theirs, namespace=namespace)
    thread = threading.Thread(target=kernel.serve_forever, daemon=True)
    thread.start()
    grader = remote.Channel(ours, trusted=True)
    grader.deadline = time.monotonic() + 120  # as during a test
    yield grader, namespace
    ours.close()
    thread.join(5)
    theirs.close()


def run(grader: remote.Channel, source: str) -> remote.TrustedNamespace:
    ns = remote.TrustedNamespace(np=np)
    ns.channel = grader
    exec(source, ns)
    return ns


def test_answers_come_back_as_data_and_proxies(pair: tuple) -> None:
    grader, student = pair
    exec(
        "import numpy as np\n"
        "def double(x):\n    return 2 * x\n"
        "def make(k):\n    return lambda x: k * x\n"
        "class Value:\n"
        "    def __init__(self, v):\n        self.v, self.grad = v, 0.0\n"
        "    def __mul__(self, o):\n"
        "        return Value(self.v * (o.v if isinstance(o, Value) else o))\n"
        "    __rmul__ = __mul__\n",
        student,
    )
    ns = run(
        grader,
        "a = double(np.arange(3.0))\n"
        "f = make(3)\n"
        "b = f(np.ones(2))\n"
        "v = 2 * Value(3.0) * Value(4.0)\n"
        "got = v.v\n",
    )
    assert type(ns["a"]) is np.ndarray and ns["a"].tolist() == [0.0, 2.0, 4.0]
    assert isinstance(ns["f"], remote.Proxy) and callable(ns["f"])
    assert ns["b"].tolist() == [3.0, 3.0]
    assert ns["got"] == 24.0


def test_the_student_gets_copies_and_calls_back_the_tests_functions(pair: tuple) -> None:
    grader, student = pair
    exec(
        "def mutate(x):\n    x *= 0\n    return x\n"
        "def apply(f, x):\n    return f(x) + 1\n"
        "def draw(rng):\n    return rng.standard_normal(3)\n",
        student,
    )
    ns = run(
        grader,
        "x = np.ones(3)\n"
        "y = mutate(x)\n"
        "z = apply(lambda u: u ** 2, np.array([2.0]))\n"
        "rng = np.random.default_rng(0)\n"
        "w1, w2 = draw(rng), draw(rng)\n",
    )
    assert ns["x"].tolist() == [0.0, 0.0, 0.0]  # changed in place, as within one process
    assert ns["y"].tolist() == [0.0, 0.0, 0.0]
    assert ns["z"].tolist() == [5.0]
    # the generator stays the test's: two calls draw different numbers
    assert not np.array_equal(ns["w1"], ns["w2"])


def test_a_call_behaves_as_within_one_process(pair: tuple) -> None:
    """Error state, warnings and in-place changes cross the channel, so a test
    scores the same under dlcourse grade as under plain nbgrader."""
    grader, student = pair
    exec(
        "import numpy as np\n"
        "def naive_sigmoid(z):\n    return 1 / (1 + np.exp(-z))\n"
        "def shift(params):\n    for W, b in params:\n        W -= 1\n    return None\n",
        student,
    )
    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        run(grader, "naive_sigmoid(np.array([-1000.0]))")
    with pytest.warns(RuntimeWarning, match="overflow encountered in exp"):
        ns = run(grader, "s = naive_sigmoid(np.array([-1000.0, 0.0]))")
    assert ns["s"].tolist() == [0.0, 0.5]
    ns = run(grader, "params = [(np.ones(2), np.zeros(1))]\nshift(params)")
    assert ns["params"][0][0].tolist() == [0.0, 0.0]


def test_only_arrays_changed_in_place_come_back(pair: tuple) -> None:
    """Reordering or rebinding the items of a list changes no array of the
    test's; an array passed twice and changed once ends as changed once."""
    grader, student = pair
    exec(
        "def reverse(caches):\n    caches.reverse()\n    return caches\n"
        "def rebind(params):\n    params[0] = params[0] - 1\n    return params\n"
        "def bump_first(a, b):\n    a += 1\n    return b\n",
        student,
    )
    ns = run(
        grader,
        "W1, W2 = np.zeros(2), np.ones(2)\n"
        "back = reverse([W1, W2])\n"
        "W = np.ones(2)\n"
        "rebound = rebind([W])\n"
        "x = np.zeros(2)\n"
        "b = bump_first(x, x)\n",
    )
    assert ns["W1"].tolist() == [0.0, 0.0] and ns["W2"].tolist() == [1.0, 1.0]
    assert ns["back"][0].tolist() == [1.0, 1.0]
    assert ns["W"].tolist() == [1.0, 1.0] and ns["rebound"][0].tolist() == [0.0, 0.0]
    assert ns["x"].tolist() == [1.0, 1.0]


def test_exceptions_keep_their_type_and_message(pair: tuple) -> None:
    grader, student = pair
    exec(
        "def todo():\n    raise NotImplementedError('write me')\n"
        "class Custom(Exception):\n    pass\n"
        "def odd():\n    raise Custom('mine')\n",
        student,
    )
    with pytest.raises(NotImplementedError, match="write me"):
        run(grader, "todo()")
    with pytest.raises(remote.RemoteError, match="mine") as info:
        run(grader, "odd()")
    assert type(info.value).__name__ == "Custom"
    with pytest.raises(NameError, match="missing"):
        run(grader, "missing()")


def test_the_student_cannot_reach_the_graders_builtins_or_globals(pair: tuple) -> None:
    grader, student = pair
    exec(
        "def escape_globals(f):\n    return f.__globals__\n"
        "def escape_raw(f):\n"
        "    return f._channel.request('getattr', target=f, name='__globals__')\n"
        "def escape_call(f):\n    return f('1 + 1')\n"
        "def escape_attr(rng):\n    return rng._bit_generator\n",
        student,
    )
    with pytest.raises(AttributeError, match="__globals__"):
        run(grader, "escape_globals(lambda u: u)")
    with pytest.raises(AttributeError, match="has no '__globals__' for you"):
        run(grader, "escape_raw(lambda u: u)")
    with pytest.raises(PermissionError, match="cannot be called"):
        run(grader, "escape_call(eval)")
    with pytest.raises(AttributeError):  # a legacy generator stays the grader's
        run(grader, "escape_attr(np.random.RandomState(0))")


def test_the_student_may_test_compare_print_and_name_the_tests_objects(pair: tuple) -> None:
    """What honest answers do with the functions and generator a test gives
    them, beyond calling them, works as in one process (helper-21 found each
    scoring 0): ``activation or relu``, ``activation == "relu"``, ``in``, a
    print, ``np.vectorize``, ``f.__name__``, ``rng or default_rng()``."""
    grader, student = pair
    exec(
        "import numpy as np\n"
        "def relu(z):\n    return np.maximum(z, 0)\n"
        "def forward(x, activation=None):\n"
        "    activation = activation or relu\n"
        "    if activation == 'relu' or activation in (None, 'tanh'):\n"
        "        return None\n"
        "    said = f'applying {activation!s:.9} {activation!r:.9}'\n"
        "    return activation(x), said, activation != relu, callable(activation)\n"
        "def vectorized(f, x):\n    return np.vectorize(f)(x)\n"
        "def named(f):\n    return f.__name__, f.__qualname__\n"
        "def draw(rng=None):\n    rng = rng or np.random.default_rng(1)\n"
        "    return rng.standard_normal(2)\n",
        student,
    )
    ns = run(
        grader,
        "def cube(u):\n    return u ** 3\n"
        "y, said, differs, can = forward(np.array([2.0]), cube)\n"
        "v = vectorized(cube, np.array([1.0, 2.0]))\n"
        "name = named(cube)\n"
        "w = draw(np.random.default_rng(0))\n",
    )
    assert ns["y"].tolist() == [8.0] and ns["said"] == "applying <function <function"
    assert ns["differs"] is True and ns["can"] is True
    assert ns["v"].tolist() == [1.0, 8.0] and ns["name"] == ("cube", "cube")
    assert ns["w"].tolist() == np.random.default_rng(0).standard_normal(2).tolist()
    # the rest of the grader's objects stays the grader's: only their names, no code
    exec(
        "def add(f):\n    return f + 1\n"
        "def code(f):\n    return f.__code__\n"
        "def flipped(f):\n    return 1 + f\n",
        student,
    )
    for source, error in [("add(cube)", PermissionError), ("code(cube)", AttributeError),
                          ("flipped(cube)", PermissionError)]:  # fmt: skip
        with pytest.raises(error):
            run(grader, "def cube(u):\n    return u ** 3\n" + source)


def test_tuples_lists_and_numbers_of_every_kind_come_back_as_data(pair: tuple) -> None:
    """A namedtuple arrives as the tuple of its items, a list subclass as the
    items it holds (whatever its iteration says), and numbers inside lists as
    JSON numbers: a 256 x 512 list of np.float64 is one answer, not 131,072
    arrays, and 300,000 Python floats fit in one (helper-21)."""
    grader, student = pair
    exec(
        "import collections, numpy as np\n"
        "Grads = collections.namedtuple('Grads', 'dx dW db')\n"
        "class Hides(list):\n    def __iter__(self):\n        return iter(())\n"
        "def grads():\n    return Grads(np.zeros(2), np.ones((2, 2)), 3.0)\n"
        "def hidden():\n    return Hides([1, 2])\n"
        "def listed():\n    return [[np.float64(i) for i in range(512)] for _ in range(256)]\n"
        "def numbers():\n"
        "    return [np.float32(0.1), np.int8(-3), np.uint64(2**64 - 1), np.bool_(True),\n"
        "            np.float64('nan'), np.float16(1.5)]\n",
        student,
    )
    exec(
        "def plain_lists():\n"  # .tolist() of a 600 x 500 gradient: 300,000 Python floats
        "    return np.random.default_rng(0).standard_normal((600, 500)).tolist()\n",
        student,
    )
    ns = run(
        grader, "g = grads()\nh = hidden()\nl = listed()\nn = numbers()\np = plain_lists()\n"
    )
    assert ns["p"] == np.random.default_rng(0).standard_normal((600, 500)).tolist()
    assert type(ns["g"]) is tuple and len(ns["g"]) == 3 and ns["g"][2] == 3.0
    assert ns["h"] == [1, 2]
    assert np.array(ns["l"]).shape == (256, 512) and type(ns["l"][3][4]) is np.float64
    kinds = [np.float32, np.int8, np.uint64, np.bool_, np.float64, np.float16]
    assert [type(v) for v in ns["n"]] == kinds
    assert ns["n"][2] == 2**64 - 1 and np.isnan(ns["n"][4]) and ns["n"][0] == np.float32(0.1)


def test_the_grader_serves_only_its_own_objects_and_few_arguments(pair: tuple) -> None:
    """What the kernel asks of the grader is asked of an object the grader
    gave it, never of data the kernel sent (helper-22: a generator built from
    a state numpy does not check read the grader's memory; format() of a
    number with a width of 300,000,000 made 300 MB), with a few arguments."""
    grader, student = pair
    exec(
        "import numpy as np\n"
        "def ask(f, target, op, **fields):\n"
        "    return f._channel.request(op, target=target, **fields)\n",
        student,
    )
    cases = [
        ("ask(cube, 1.0, 'op', name='format', args=['300000000'])", "only its own objects"),
        ("ask(cube, np.random.default_rng(0), 'getattr', name='integers')", "only its own"),
        ("ask(cube, [cube], 'op', name='bool', args=[])", "only its own objects"),
        ("ask(cube, cube, 'op', name='bool', args=list(range(8)))", "not served"),
        ("ask(cube, cube, 'op', name='format', args=np.zeros(10**6))", "not served"),
        ("ask(cube, cube, 'call', args=list(range(65)), kwargs={})", "at most 64"),
        ("ask(cube, cube, 'call', args=np.zeros(10**6), kwargs={})", "at most 64"),
    ]
    for source, said in cases:
        with pytest.raises(PermissionError, match=said):
            run(grader, f"def cube(u):\n    return u ** 3\n{source}\n")


def test_what_the_grader_serves_stays_small_however_it_is_asked(pair: tuple) -> None:
    """helper-23's bypasses: sig= (numpy's other name for signature=), a dtype
    given by position, a wide format spec, an integer too long for JSON."""
    grader, student = pair
    exec(
        "import numpy as np\n"
        "def apply(f, *args, **kwargs):\n    return f(*args, **kwargs)\n"
        "def wide(f):\n    return format(f, '>99999999')\n"
        "def square_of_huge(f):\n"
        "    try:\n        f(10**3000)\n    except ValueError as error:\n"
        "        return str(error)\n",
        student,
    )
    for source in [
        "apply(np.power, 3, 1000, sig='OO->O')",
        "apply(np.random.RandomState(0).randint, 0, 10, None, 'f8,' * 1000)",
    ]:
        with pytest.raises(PermissionError, match="grader"):
            run(grader, source)
    ns = run(grader, "w = wide(np.exp)\nh = square_of_huge(lambda u: u ** 2)\n")
    assert ns["w"] == "<ufunc 'exp'>" and ns["h"] == "an integer too long to send"


def test_a_students_random_generator_comes_back_as_one(pair: tuple) -> None:
    grader, student = pair
    exec("import numpy as np\ndef make(seed):\n    return np.random.default_rng(seed)\n", student)
    ns = run(grader, "g = make(5)\nx = g.standard_normal(3)\n")
    assert np.array_equal(ns["x"], np.random.default_rng(5).standard_normal(3))


@pytest.mark.parametrize(
    "state",
    [
        "{'state': 0, 'inc': 0}",  # an even increment: numpy would draw zeros for ever
        "{'state': 5, 'inc': rng.bit_generator.state['state']['inc'] + 2}",  # another stream
    ],
)
def test_a_generator_comes_back_only_in_a_state_drawing_could_leave(
    pair: tuple, state: str
) -> None:
    grader, student = pair
    exec(
        "def tamper(rng):\n"
        f"    rng.bit_generator.state = {{**rng.bit_generator.state, 'state': {state}}}\n",
        student,
    )
    rng = np.random.default_rng(3)
    before = rng.bit_generator.state
    ns = remote.TrustedNamespace(np=np, rng=rng)
    ns.channel = grader
    with pytest.raises(remote.ChannelBroken, match="malformed"):
        exec("tamper(rng)", ns)
    assert rng.bit_generator.state == before


@pytest.fixture
def raw() -> Iterator[tuple[remote.Channel, socket.socket]]:
    """The grader's channel and the bare socket at the kernel's end, for a
    kernel that misbehaves."""
    ours, theirs = socket.socketpair()
    grader = remote.Channel(ours, trusted=True)
    grader.deadline = time.monotonic() + 120  # as during a test
    yield grader, theirs
    ours.close()
    theirs.close()


def send(theirs: socket.socket, message: dict, blobs: list[bytes] = ()) -> None:
    """A message from the bare kernel socket, framed as the channel frames them."""
    data = json.dumps(message).encode()
    theirs.sendall(remote._HEADER.pack(len(data), len(blobs)) + data)
    for blob in blobs:
        theirs.sendall(remote._BLOB.pack(len(blob)) + blob)


def test_nothing_received_is_unpickled_or_run(raw: tuple) -> None:
    grader, theirs = raw
    send(theirs, {"id": 1, "ok": {"pickle": "gASVAAAAAAAAAAA="}})
    with pytest.raises(remote.ChannelBroken, match="malformed"):
        grader.request("lookup", name="x")


@pytest.mark.parametrize(
    ("description", "blobs"),
    [
        ([0, "|O", [1]], [b"\0" * 8]),  # objects
        ([0, "V8", [1]], [b"\0" * 8]),  # raw void
        ([0, "[('a', '<f8')]", [1]], [b"\0" * 8]),  # fields
        ([0, "(2,)<f8", [1]], [b"\0" * 16]),  # a sub-array
        ([0, "<f8", [3]], [b"\0" * 8]),  # fewer bytes than the shape needs
        ([0, "<f8", [-1]], [b"\0" * 8]),  # a negative shape
        ([1, "<f8", [1]], [b"\0" * 8]),  # a blob that is not there
        ([0, "not a dtype", [1]], [b"\0" * 8]),
        ({"x": 1}, []),
    ],
)
def test_arrays_are_numbers_or_strings_of_exactly_their_size(
    raw: tuple, description: object, blobs: list[bytes]
) -> None:
    grader, theirs = raw
    send(theirs, {"id": 1, "ok": {"a": description}}, blobs)
    with pytest.raises(remote.ChannelBroken, match="malformed"):
        grader.request("lookup", name="x")


def test_an_array_arrives_whole_and_writable(raw: tuple) -> None:
    grader, theirs = raw
    array = np.arange(6.0).reshape(2, 3)
    send(theirs, {"id": 1, "ok": {"a": [0, array.dtype.str, [2, 3]]}}, [array.tobytes()])
    got = grader.request("lookup", name="x")
    assert np.array_equal(got, array) and got.flags.writeable


def frame(message: dict, blobs: list[bytes] = ()) -> bytes:
    """A message's bytes on the wire."""
    buffer = bytearray()
    data = json.dumps(message).encode()
    buffer += remote._HEADER.pack(len(data), len(blobs)) + data
    for blob in blobs:
        buffer += remote._BLOB.pack(len(blob)) + blob
    return bytes(buffer)


def test_answers_arrive_whole_however_the_stream_cuts_them(raw: tuple) -> None:
    grader, theirs = raw
    big = np.arange(40_000.0)  # 320 kB: more than one read ahead
    wire = frame({"id": 1, "ok": 1}) + frame({"id": 2, "ok": {"a": [0, big.dtype.str, [40_000]]}},
                                             [big.tobytes()])  # fmt: skip
    wire += frame({"id": 3, "ok": "three"})
    theirs.sendall(wire[:40])  # all of answer 1, and the start of answer 2
    pieces = [wire[i : i + 997] for i in range(40, len(wire), 997)]
    writer = threading.Thread(target=lambda: [theirs.sendall(p) for p in pieces], daemon=True)
    writer.start()
    assert grader.request("lookup", name="x") == 1
    assert np.array_equal(grader.request("lookup", name="y"), big)
    assert grader.request("lookup", name="z") == "three"
    writer.join(5)


@pytest.mark.parametrize(
    "value", [np.float32, np.bool_, np.longdouble, np.dtype(">i2"), np.dtype(float), float, int]
)
def test_the_types_and_dtypes_of_numbers_travel_as_themselves(value: object) -> None:
    channel = remote.Channel(None)
    encoded = json.loads(json.dumps(channel.encode(value)))
    assert "ref" not in encoded
    assert channel.decode(encoded) is value or channel.decode(encoded) == value


@pytest.mark.parametrize("value", [np.dtype(object), np.dtype("U3"), np.str_, str, type])
def test_other_types_and_dtypes_travel_as_handles(value: object) -> None:
    assert "ref" in remote.Channel(None).encode(value)


@pytest.mark.parametrize(
    "value",
    [np.float64(2.5), np.array(3.0), np.zeros((0, 3)), np.arange(12.0).reshape(3, 4).T,
     np.array(["ab", "c"]), np.array([True, False]), np.arange(6, dtype=np.int8)[::2]],
)  # fmt: skip
def test_arrays_and_scalars_keep_their_shape_dtype_and_values(value: object) -> None:
    channel = remote.Channel(None)
    encoded = json.loads(json.dumps(channel.encode(value)))
    channel._blobs_in = [bytearray(b) for b in channel._blobs_out]
    back = channel.decode(encoded)
    assert type(back) is type(value)
    assert np.asarray(back).shape == np.shape(value)
    assert np.asarray(back).dtype == np.asarray(value).dtype
    assert np.array_equal(back, value)


def test_too_many_or_too_large_blobs_are_refused(raw: tuple) -> None:
    grader, theirs = raw
    theirs.sendall(remote._HEADER.pack(2, remote.MAX_BLOBS + 1) + b"{}")
    with pytest.raises(remote.ChannelBroken, match="over the"):
        grader.request("lookup", name="x")


def test_a_student_that_never_answers_runs_out_of_time(raw: tuple) -> None:
    grader, _ = raw
    grader.deadline = 0.0  # already over
    with pytest.raises(remote.Timeout):
        grader.request("lookup", name="x")
    assert grader.broken
    with pytest.raises(remote.ChannelBroken):
        grader.request("lookup", name="y")


def test_oversized_answers_are_refused(raw: tuple) -> None:
    grader, theirs = raw
    theirs.sendall(remote._HEADER.pack(remote.MAX_MESSAGE + 1, 0))
    with pytest.raises(remote.ChannelBroken, match="over the"):
        grader.request("lookup", name="x")


def test_json_parts_over_their_own_limit_are_refused_unread(raw: tuple) -> None:
    grader, theirs = raw  # far below MAX_MESSAGE, but parsed it would be 20 times as large
    theirs.sendall(remote._HEADER.pack(remote.MAX_JSON + 1, 0))
    with pytest.raises(remote.ChannelBroken, match="over the limits"):
        grader.request("lookup", name="x")


def test_json_of_millions_of_values_is_refused_before_it_is_parsed(
    raw: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    grader, theirs = raw
    parsed = []
    monkeypatch.setattr(remote.json, "loads", parsed.append)
    hostile = b'{"id": 1, "ok": {"l": [' + b"[]," * remote.MAX_VALUES + b"[]]}}"
    assert len(hostile) < remote.MAX_JSON  # 1.7 GB of lists once parsed, were it 64 MB
    thread = threading.Thread(
        target=theirs.sendall, args=(remote._HEADER.pack(len(hostile), 0) + hostile,)
    )
    thread.start()
    with pytest.raises(remote.ChannelBroken, match="values"):
        grader.request("lookup", name="x")
    thread.join(5)
    assert parsed == []


def test_a_long_list_of_numbers_is_still_an_answer(pair: tuple) -> None:
    grader, namespace = pair
    namespace["losses"] = [float(i) / 7 for i in range(200_000)]  # 2.8 MB of JSON
    assert grader.request("lookup", name="losses") == namespace["losses"]


def test_blobs_count_towards_the_size_limit(raw: tuple) -> None:
    grader, theirs = raw
    data = json.dumps({"id": 1, "ok": None}).encode()
    theirs.sendall(remote._HEADER.pack(len(data), 1) + data)
    theirs.sendall(remote._BLOB.pack(remote.MAX_MESSAGE))
    with pytest.raises(remote.ChannelBroken, match="over the"):
        grader.request("lookup", name="x")


def reply(theirs: socket.socket, message: dict, blobs: list[bytes] = ()) -> None:
    """Answer the grader's first request (sent without arrays) from the bare kernel socket."""
    size, count = remote._HEADER.unpack(theirs.recv(remote._HEADER.size))
    assert count == 0
    request = json.loads(theirs.recv(size))
    send(theirs, {"id": request["id"], **message}, blobs)


def test_a_kernel_cannot_write_where_the_test_sent_no_array(raw: tuple) -> None:
    grader, theirs = raw
    secret = np.zeros(2)
    sent = {"config": collections.OrderedDict(W=secret)}  # travels as a handle, not as data
    target = remote.Proxy(grader, 1)
    kernel = remote.Channel(theirs)  # only to encode the hostile answer, as a kernel would
    hostile = kernel.encode([[[1, "config", "W"], np.full(2, 666.0)]])  # kwargs["config"]["W"]
    answer = {"ok": None, "changed": hostile}
    thread = threading.Thread(target=reply, args=(theirs, answer, kernel._blobs_out))
    thread.start()
    with pytest.raises(remote.ChannelBroken, match="malformed"):
        target(**sent)
    thread.join(5)
    assert secret.tolist() == [0.0, 0.0]


def test_warnings_from_the_kernel_are_capped(raw: tuple) -> None:
    grader, theirs = raw
    flood = [["RuntimeWarning", "x" * 5000]] * 1000
    thread = threading.Thread(target=reply, args=(theirs, {"ok": 1, "warnings": flood}))
    thread.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert grader.request("lookup", name="x") == 1
    thread.join(5)
    assert len(caught) == remote.MAX_WARNINGS
    assert all(len(str(w.message)) == 2000 for w in caught)


# ------------------------------------- found by red-teaming the channel (helper's report)
def test_numpy_sees_the_students_object_as_its_numbers(pair: tuple) -> None:
    """numpy's functions defer to an object's own methods (np.std calls .std()):
    an answer whose methods report what the test wants is judged by its numbers."""
    grader, student = pair
    exec(
        "import numpy as np\n"
        "class Liar:\n"
        "    def __array__(self, dtype=None, copy=None):\n"
        "        return np.array([0.0, 0.0, 9.0])\n"
        "    def std(self, *a, **k):\n        return 1.0\n"
        "    def mean(self, *a, **k):\n        return 0.0\n"
        "    @property\n    def shape(self):\n        return (10, 10)\n"
        "class Things:\n"
        "    def __array__(self, dtype=None, copy=None):\n"
        "        return np.array([None, {}], dtype=object)\n"
        "def liar():\n    return Liar()\n"
        "def things():\n    return Things()\n",
        student,
    )
    ns = run(
        grader,
        "W = liar()\n"
        "sd, mean, shape = np.std(W), np.mean(W), np.shape(W)\n"
        "e = np.exp(W)\n"
        "total = np.zeros(3) + W\n",
    )
    assert (ns["sd"], ns["mean"], ns["shape"]) == (np.std([0, 0, 9.0]), 3.0, (3,))
    assert ns["e"].tolist() == np.exp([0, 0, 9.0]).tolist()
    assert ns["total"].tolist() == [0.0, 0.0, 9.0]
    with pytest.raises(TypeError, match="not an array of numbers"):
        run(grader, "np.asarray(things())")


def test_the_grader_makes_no_array_larger_than_an_answer_for_the_kernel(pair: tuple) -> None:
    """The grader has no memory limit: what the kernel asks of its generators
    and ufuncs is bounded by what one answer may carry."""
    grader, student = pair
    exec(
        "import numpy as np\n"
        "def draw(rng, *size):\n    return rng.standard_normal(size)\n"
        "def permute(rng, n):\n    return rng.permutation(n)\n"
        "def legacy(rs, *dims):\n    return rs.rand(*dims)\n"
        "def apply(f, *args, **kwargs):\n    return f(*args, **kwargs)\n"
        "def method(rng, name, *args, **kwargs):\n    return getattr(rng, name)(*args, **kwargs)\n",
        student,
    )
    big = remote.MAX_ELEMENTS + 1
    # a Generator travels as its state, drawn from in the kernel; a legacy RandomState
    # stays the grader's, and draws for the kernel there
    rng = "np.random.RandomState(0)"
    cases = [
        f"method({rng}, 'standard_normal', (3000, 3000))",  # 9M, each axis small
        f"method({rng}, 'normal', tuple(range(4000)), tuple((i,) for i in range(4000)))",  # 16M
        f"method({rng}, 'choice', 290_000_000, size=6, replace=False)",  # drawn from 290M
        f"method({rng}, 'choice', np.arange(10), size=(3000, 3000))",
        f"method({rng}, 'normal', [[0.0], [0.0, 1.0]])",  # ragged
        f"method({rng}, 'bytes', 400_000_000)",  # its work is not bounded by what it returns
        f"draw({rng}, {big})",
        f"draw({rng}, 2, {big // 2 + 1})",
        f"permute({rng}, {big})",
        f"legacy({rng}, {big})",
        "apply(np.exp, np.zeros((4000, 1)), np.zeros((1, 4000)))",  # add's broadcast: 16M
        "apply(np.add, np.zeros((4000, 1)), np.zeros((1, 4000)))",
        "apply(np.exp, np.zeros(3), where=np.ones(3, bool))",
        "apply(np.exp, np.zeros(3), out=np.zeros(3))",
        # bytes, not numbers: each draw of a long string, or of a whole row
        f"method({rng}, 'choice', np.array(['x' * 24]), size={big - 1})",
        f"method({rng}, 'choice', ['x' * 1000, 'y'], size=8)",
        f"method({rng}, 'choice', np.zeros((1, 16)), size={big // 16 + 1})",
        f"method({rng}, 'choice', np.array({50 * big}), size=3, replace=False)",  # a 0-d count
        f"method({rng}, 'permutation', np.array({big}))",
        f"method({rng}, 'choice', [None, None], size=4)",  # objects would stay with the grader
        "apply(np.add, np.zeros(3), np.zeros(3), dtype='U100000')",
        "apply(np.add, np.zeros(3), np.zeros(3), dtype=object)",
        "apply(np.add, np.zeros(3), np.zeros(3), signature='dd->d')",
        "apply(np.add, 'x' * 1000, 'y')",  # numpy's string loops
        "apply(np.matmul, np.zeros((4000, 2)), np.zeros((2, 4000)))",  # 16M from 16k
    ]
    for source in cases:
        with pytest.raises((ValueError, PermissionError, TypeError), match="grader"):
            run(grader, source)
    ns = run(
        grader,
        "a = draw(np.random.default_rng(0), 1000, 100)\n"
        "b = apply(np.add, np.zeros((100, 1)), np.ones((1, 100)))\n"
        "c = permute(np.random.default_rng(0), 10)\n"
        f"d = method({rng}, 'choice', 10, size=3, replace=False)\n"
        f"e = method({rng}, 'normal', (0.0, 1.0), 1.0, size=(4, 2))\n"
        f"f = method({rng}, 'permutation', np.arange(12.0).reshape(4, 3))\n"
        "g = apply(np.add, np.zeros(3), 1.0, dtype='float32')\n"
        # a dtype as a type or a dtype, numpy's or Python's, as honest code writes it
        "h = apply(np.add, np.zeros(3), 1.0, dtype=np.float32)\n"
        f"i = method({rng}, 'randint', 0, 5, 3, dtype=np.int16)\n"
        f"j = method({rng}, 'randint', 0, 5, 3, dtype=np.dtype('int16'))\n"
        "k = apply(np.add, np.zeros(2), 1, dtype=float)\n",
    )
    assert ns["a"].shape == (1000, 100) and ns["b"].sum() == 10_000 and len(ns["c"]) == 10
    assert len(set(ns["d"].tolist())) == 3 and ns["e"].shape == (4, 2)
    assert ns["f"].shape == (4, 3) and ns["g"].dtype == np.float32
    assert ns["h"].dtype == np.float32 and ns["i"].dtype == ns["j"].dtype == np.int16
    assert ns["k"].dtype == np.float64


def test_a_random_generator_is_the_students_own_and_its_state_comes_back(pair: tuple) -> None:
    """The test's Generator travels as its state: the student's code holds a
    generator of its own (``default_rng(rng)``, ``isinstance``, ``out=``, an
    unbound method, draws one at a time, all as in one process: helper-21
    found each scoring 0), and the test's takes the state the call left."""
    grader, student = pair
    exec(
        "import numpy as np\n"
        "def he_init(fan_in, fan_out, rng):\n"
        "    rng = np.random.default_rng(rng)\n"
        "    assert isinstance(rng, np.random.Generator)\n"
        "    W = np.empty((fan_in, fan_out))\n"
        "    rng.standard_normal(out=W)\n"
        "    b = np.random.Generator.standard_normal(rng, fan_out)\n"
        "    one = [rng.normal(0, 1) for _ in range(1000)]\n"
        "    return W, b, one\n",
        student,
    )
    ns = run(
        grader,
        "rng = np.random.default_rng(7)\n"
        "W, b, one = he_init(3, 2, rng)\n"
        "after = rng.standard_normal(2)\n",
    )
    here = np.random.default_rng(7)
    W = np.empty((3, 2))
    here.standard_normal(out=W)
    b = here.standard_normal(2)
    one = [here.normal(0, 1) for _ in range(1000)]
    assert np.array_equal(ns["W"], W) and np.array_equal(ns["b"], b) and ns["one"] == one
    assert np.array_equal(ns["after"], here.standard_normal(2))  # as if in one process




def test_the_students_warnings_are_raised_again_at_most_a_few_per_test(pair: tuple) -> None:
    grader, student = pair
    exec(
        "import warnings\n"
        "def noisy():\n"
        "    for i in range(50):\n        warnings.warn(f'noise {i}', UserWarning)\n",
        student,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(grader, "for _ in range(100):\n    noisy()\n")
    assert len(caught) == remote.MAX_WARNINGS
    assert str(caught[0].message) == "noise 0"
    grader.warnings_left = remote.MAX_WARNINGS  # the next test (the executor resets it)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(grader, "noisy()")
    assert len(caught) == remote.MAX_WARNINGS


def test_the_grader_never_waits_on_the_kernel_outside_a_test(pair: tuple) -> None:
    """A test's message read after its deadline (a KeyError's is the repr of
    its key, the student's object) fails at once rather than waiting forever."""
    grader, student = pair
    exec("class Stuck:\n    def __repr__(self):\n        while True:\n            pass\n", student)
    exec("def stuck():\n    return Stuck()\n", student)
    ns = run(grader, "key = stuck()")
    grader.deadline = None
    with pytest.raises(remote.ChannelBroken, match="outside a test"):
        repr(ns["key"])
    assert executor._message(KeyError(ns["key"])).startswith("(the message could not be read")


@pytest.mark.parametrize(
    ("fields", "blobs"),
    [
        ({"ok": None, "release": 5}, []),
        ({"ok": None, "release": [{"x": 1}]}, []),
        ({"error": "not a pair"}, []),
        ({"ok": {"s": [0, "<U1", []]}}, [b"\xff\xff\xff\xff"]),  # no such code point
        ({"ok": {"dt": "|O"}}, []),  # objects
        ({"ok": {"ty": "[('a', '<f8')]"}}, []),  # fields
        ({"ok": {"dt": "<U3"}}, []),  # not a number's
        ({"ok": {"dt": "not a dtype"}}, []),
        ({"ok": {"ty": 8}}, []),
        ({"ok": {"py": "str"}}, []),
        ({"ok": {"py": ["float"]}}, []),
        ({"ok": {"n": ["<f8", 1.5]}}, []),  # a float's value travels as its repr
        ({"ok": {"n": ["<f8", "1" * 40]}}, []),
        ({"ok": {"n": ["|i1", 300]}}, []),  # out of its type's range
        ({"ok": {"n": ["|O", 1]}}, []),
        ({"ok": {"n": ["<i8"]}}, []),
        ({"ok": {"g": {"d": [["bit_generator", "Mystery"]]}}}, []),
        ({"ok": {"g": {"d": [["bit_generator", "PCG64"], ["state", "not a state"]]}}}, []),
        ({"ok": {"g": [1, 2]}}, []),
    ],
)
def test_a_malformed_reply_breaks_the_channel(raw: tuple, fields: dict, blobs: list) -> None:
    grader, theirs = raw
    send(theirs, {"id": 1, **fields}, blobs)
    with pytest.raises(remote.ChannelBroken):
        grader.request("lookup", name="x")
    assert grader.broken
