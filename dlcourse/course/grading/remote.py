"""Calls between the grader and a student's kernel that carry data, never code.

A hidden test runs in the grader's own (trusted) process; the names it does
not define itself, the student's answers, are looked up in the student's
kernel, and what comes back is either plain data or a :class:`Proxy`, a
handle on an object that stays in the kernel. Calling a proxy, reading its
attributes or applying an operator to it is a request to the kernel, whose
answer is again data or a proxy. The same holds the other way: a function the
test hands to the student's code (``chain_rule(np.cos, lambda u: u ** 2, ...)``)
stays in the grader and is called back through a proxy in the kernel.

Both sides speak length-prefixed JSON, followed by the raw bytes of the arrays
it describes. Data is ``None``, bools, ints, floats, complex numbers, strings,
bytes, numpy arrays and scalars of a plain numeric, bool or string dtype (read
back with ``np.frombuffer``, their byte count checked against their shape),
the types of numbers, numpy's and Python's, and their dtypes (``dtype=float``,
``np.float32``), numpy's random generators (as their bit generator's state),
and lists, tuples and dicts of data; anything else travels as a handle. Nothing is
unpickled and nothing received is executed, so whatever the student's code
does to its own process, it can only change the data its answers return.

A call behaves as it would inside one process, as under plain nbgrader: the
student's function runs under the test's numpy error state (``np.errstate``),
the warnings it raises are raised again in the grader (where a warning in a
test cell counts as output on stderr), and arrays it changes in place are
changed in the test too (the arguments travel as copies and come back), and
so is the state of a random generator the call drew from: the student's code
holds a generator of its own, as ``np.random.default_rng(rng)`` and
``isinstance`` expect, drawing at the kernel's speed, under its memory limit.

What the kernel may ask of the grader's objects is narrow: call a callable the
test gave it (not a builtin such as ``eval`` or ``open``, not a class or a
module), test it for truth, compare it (by identity), print it and read a
function's name (``activation or relu``, ``f == "relu"``, ``f.__name__``), and
read public attributes of a legacy ``RandomState`` (``rs.randn``).
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import inspect
import json
import math
import operator
import re
import socket
import struct
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import numpy as np

MAX_MESSAGE = 64 * 1024 * 1024  # bytes; a larger answer is refused
# The JSON part is parsed into Python objects, which take many times its bytes
# (64 MB of "[]," is 22 million lists, 1.7 GB), so it has a smaller limit, and
# one over SCAN_FROM bytes is refused before parsing if it holds more than
# MAX_VALUES values (brackets and commas, counted in strings too: an upper bound).
MAX_JSON = 8 * 1024 * 1024
MAX_VALUES = 1_000_000
SCAN_FROM = 1 << 16
MAX_DEPTH = 64  # nesting of lists, tuples and dicts
MAX_ELEMENTS = MAX_MESSAGE // 8  # numbers the grader's numpy may make in one call for the kernel
MAX_WARNINGS = 20  # per test; more are dropped
_ERROR_MODES = ("ignore", "warn", "raise", "print")  # np.errstate values the kernel accepts
MAX_BLOBS = 4096  # arrays in one message
_HEADER = struct.Struct("!QI")  # a message's JSON length, and how many blobs follow
_BLOB = struct.Struct("!Q")
READ_AHEAD = 1 << 16  # bytes a read asks for at least
_DATA_KINDS = "biufcSU"  # numpy dtype kinds that travel as raw bytes


# the types of numbers and bools, which travel by name: numpy's (np.float32, np.bool_), and
# Python's (float as a dtype)
_NUMBER_TYPES = frozenset(np.dtype(code).type for code in "?bhilqpBHILQPefdgFDG")
_PYTHON_NUMBER_TYPES = {kind.__name__: kind for kind in (bool, int, float, complex)}


# The bit generators whose random generators travel as their state: default_rng's,
# and its variant. numpy does not check every field of a state it is given (an
# MT19937's position, a Philox's buffer index are read unchecked), so only these,
# whose every field _generator checks, travel; any other generator is a handle.
BIT_GENERATORS = {kind.__name__: kind for kind in (np.random.PCG64, np.random.PCG64DXSM)}


def _is_data(dtype: np.dtype) -> bool:
    """Numbers, booleans or strings, without fields or sub-arrays (nothing
    that could hold or describe an object)."""
    return (
        dtype.kind in _DATA_KINDS
        and not dtype.hasobject
        and dtype.fields is None
        and dtype.subdtype is None
    )


OPERATORS: dict[str, Callable[..., Any]] = {
    name: getattr(operator, name)
    for name in (
        "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul",
        "neg", "pos", "abs", "eq", "ne", "lt", "le", "gt", "ge",
        "getitem", "setitem", "contains",
    )
}  # fmt: skip
# What the kernel may do with the grader's objects (the test's functions and random
# generators) besides calling them, as a student's code does with what it is given:
# test them, compare them (by identity), print them, and read a function's name
GRADER_OPERATORS: dict[str, Callable[..., Any]] = {
    "bool": bool,
    "eq": operator.is_,
    "ne": operator.is_not,
    "callable": callable,
    "repr": lambda o: repr(o)[:2000],
    "str": lambda o: str(o)[:2000],
    "format": lambda o, spec: format(o, spec if _short_spec(spec) else "")[:2000],
}
GRADER_NAMES = ("__name__", "__qualname__")  # of the grader's functions


def _short_spec(spec: Any) -> bool:
    """A format spec that makes a short string: no width or precision over 9,999."""
    return type(spec) is str and len(spec) <= 8 and re.search(r"\d{5}", spec) is None
OPERATORS.update(
    len=len,
    iter=iter,
    next=next,
    bool=bool,
    float=float,
    int=int,
    repr=lambda o: repr(o)[:2000],
    str=lambda o: str(o)[:2000],
    format=lambda o, spec: format(o, spec)[:2000],
    array=np.asarray,
    callable=callable,
)


class RemoteError(Exception):
    """The other side raised an exception of a type this side has no name for;
    the subclass made for it carries the remote type's name."""


class ChannelBroken(RuntimeError):
    """The kernel died, stopped answering in time, or broke the protocol; the
    test that was running fails and the grader restarts the kernel."""


class Timeout(ChannelBroken, TimeoutError):
    pass


def _remote_exception(name: str, message: str) -> BaseException:
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, UnicodeError):
        return cls(message)
    return type(name if name.isidentifier() else "RemoteError", (RemoteError,), {})(message)


class Proxy:
    """An object that lives on the other side."""

    __slots__ = ("__weakref__", "_channel", "_ref")

    def __init__(self, channel: Channel, ref: int):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_ref", ref)

    def _op(self, name: str, *args: Any) -> Any:
        return self._channel.request("op", target=self, name=name, args=list(args))

    def __getattr__(self, name: str) -> Any:
        # numpy and Python probe these; the other side's stay there, but the kernel may
        # read the name of the grader's function (the grader never a kernel's)
        if name in self.__slots__ or (
            name.startswith("__") and (name not in GRADER_NAMES or self._channel.trusted)
        ):
            raise AttributeError(name)
        return self._channel.request("getattr", target=self, name=name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._channel.request("setattr", target=self, name=name, value=value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.request("call", target=self, args=list(args), kwargs=kwargs)

    def __del__(self) -> None:
        channel = getattr(self, "_channel", None)
        if channel is not None:
            channel.released.append(self._ref)

    def __hash__(self) -> int:
        return object.__hash__(self)

    def __copy__(self) -> Proxy:  # the other side's object itself, as copy treats a function
        return self

    def __deepcopy__(self, memo: dict) -> Proxy:
        return self

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        value = self._op("array")
        array = None if isinstance(value, Proxy) else np.asarray(value, dtype=dtype)
        if array is None or array.dtype.kind not in "biufcUS":
            raise TypeError("the student's object is not an array of numbers")
        return array

    # numpy's functions and ufuncs see the student's object as its numbers, never
    # calling its own methods (an answer whose .std() reports what the test wants)
    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return func(*_as_numbers(args), **_as_numbers(kwargs))

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return getattr(ufunc, method)(*_as_numbers(inputs), **_as_numbers(kwargs))

    def __bool__(self) -> bool:
        return _exact(self._op("bool"), bool)

    def __len__(self) -> int:
        return _exact(self._op("len"), int)

    def __float__(self) -> float:
        return _exact(self._op("float"), float)

    def __int__(self) -> int:
        return _exact(self._op("int"), int)

    def __repr__(self) -> str:
        return str(self._op("repr"))

    def __str__(self) -> str:
        return str(self._op("str"))

    def __format__(self, spec: str) -> str:
        return str(self._op("format", spec))

    def __iter__(self) -> Any:
        return self._op("iter")

    def __next__(self) -> Any:
        return self._op("next")

    def __contains__(self, item: Any) -> bool:
        return bool(self._op("contains", item))

    def __getitem__(self, key: Any) -> Any:
        return self._op("getitem", key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._op("setitem", key, value)


def _as_numbers(data: Any) -> Any:
    """``data`` with every proxy in it, through lists, tuples and dicts, as its array."""
    if isinstance(data, Proxy):
        return np.asarray(data)
    if type(data) in (list, tuple):
        return type(data)(_as_numbers(item) for item in data)
    if type(data) is dict:
        return {key: _as_numbers(item) for key, item in data.items()}
    return data


def _exact(value: Any, kind: type) -> Any:
    if type(value) is not kind and not (kind is float and type(value) is int):
        raise TypeError(f"the student's object gave {type(value).__name__}, not {kind.__name__}")
    return kind(value)


def _binary(name: str, reflected: bool = False) -> Callable[..., Any]:
    def method(self: Proxy, other: Any) -> Any:
        if reflected:
            return self._channel.request(
                "op", target=None, name=name, args=[other, self], reflected=True
            )
        return self._op(name, other)

    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul"):
    setattr(Proxy, f"__{_name}__", _binary(_name))
    setattr(Proxy, f"__r{_name}__", _binary(_name, reflected=True))
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(Proxy, f"__{_name}__", _binary(_name))
for _name in ("neg", "pos", "abs"):
    setattr(Proxy, f"__{_name}__", lambda self, _n=_name: self._op(_n))


class Channel:
    """One end of the connection. ``namespace`` answers ``lookup`` requests
    (the kernel's end); ``trusted`` restricts what the other side may do with
    this side's objects (the grader's end)."""

    def __init__(
        self,
        sock: socket.socket,
        namespace: MutableMapping[str, Any] | None = None,
        trusted: bool = False,
    ):
        self.sock = sock
        self.namespace = namespace
        self.trusted = trusted
        self.exported: dict[int, Any] = {}
        self.released: list[int] = []
        self.deadline: float | None = None
        self.warnings_left = MAX_WARNINGS  # the student's warnings raised again in this test
        self.broken = ""
        self._next_ref = 0
        self._next_id = 0
        self._blobs_out: list[bytes] = []  # the arrays of the message being encoded
        self._blobs_in: list[bytearray] = []  # the arrays of the message last received
        self._inbox = bytearray()  # bytes read but not yet used
        # one question at a time: a kernel's threads may ask the grader at once, and
        # each waits for the one before (its callbacks are served in its own thread)
        self._asking = threading.RLock()

    # ---------------------------------------------------------------- encoding
    def encode(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("data nested too deeply")
        kind = type(value)
        if kind is int and value.bit_length() > 14_000:  # JSON writes at most 4,300 digits
            raise ValueError("an integer too long to send")
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:  # as a JSON number (read back exactly), but nan and inf by name
            return value if math.isfinite(value) else {"f": repr(value)}
        if kind is complex:
            return {"c": [repr(value.real), repr(value.imag)]}
        if kind is bytes:
            return {"b": base64.b64encode(value).decode()}
        if isinstance(value, np.bool_ | np.integer | np.floating) and value.dtype.itemsize <= 8:
            # a number in the JSON, not an array of its own: a list of numpy's numbers is
            # not thousands of arrays
            number = value.item()
            return {"n": [value.dtype.str, repr(number) if type(number) is float else number]}
        if isinstance(value, np.ndarray | np.generic) and _is_data(value.dtype):
            array = np.asarray(value)
            self._blobs_out.append(array.tobytes())  # C order, whatever the layout
            tag = "a" if isinstance(value, np.ndarray) else "s"
            return {tag: [len(self._blobs_out) - 1, array.dtype.str, list(array.shape)]}
        if isinstance(value, np.dtype) and value.type in _NUMBER_TYPES and _is_data(value):
            return {"dt": value.str}
        if kind is type and value in _NUMBER_TYPES:
            return {"ty": np.dtype(value).str}
        if kind is type and _PYTHON_NUMBER_TYPES.get(value.__name__) is value:
            return {"py": value.__name__}
        if type(value) is np.random.Generator and (
            BIT_GENERATORS.get(type(value.bit_generator).__name__) is type(value.bit_generator)
        ):
            return {"g": self.encode(value.bit_generator.state, depth + 1)}
        if isinstance(value, list | tuple):  # a namedtuple too, as the tuple of its items
            base = list if isinstance(value, list) else tuple
            return {base.__name__[0]: [self.encode(v, depth + 1) for v in base.__iter__(value)]}
        if kind is dict:
            return {
                "d": [
                    [self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()
                ]
            }
        if kind is Proxy and value._channel is self:
            return {"own": value._ref}
        self._next_ref += 1
        self.exported[self._next_ref] = value
        return {"ref": self._next_ref}

    def decode(self, data: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("data nested too deeply")
        if data is None or type(data) in (bool, int, float, str):
            return data
        if type(data) is not dict or len(data) != 1:
            raise ValueError("malformed message")
        ((tag, body),) = data.items()
        if tag == "f":
            return float(body)
        if tag == "c":
            return complex(float(body[0]), float(body[1]))
        if tag == "b":
            return base64.b64decode(body)
        if tag in ("a", "s"):
            array = self._array(body)
            return array if tag == "a" else array[()]
        if tag == "n":
            return _number(body)
        if tag == "g":
            return _generator(self.decode(body, depth + 1))
        if tag in ("dt", "ty"):
            kind = _number_dtype_named(body)
            return kind if tag == "dt" else kind.type
        if tag == "py":
            if type(body) is not str or body not in _PYTHON_NUMBER_TYPES:
                raise ValueError("malformed type")
            return _PYTHON_NUMBER_TYPES[body]
        if tag == "l":
            return [self.decode(v, depth + 1) for v in body]
        if tag == "t":
            return tuple(self.decode(v, depth + 1) for v in body)
        if tag == "d":
            return {self.decode(k, depth + 1): self.decode(v, depth + 1) for k, v in body}
        if tag == "own":
            return self.exported[int(body)]
        if tag == "ref":
            return Proxy(self, int(body))
        raise ValueError(f"unknown tag {tag!r}")

    def _array(self, body: Any) -> np.ndarray:
        """An array from its description ``[blob, dtype, shape]`` and the
        message's raw bytes: numbers, booleans and strings only, never
        objects, and exactly as many bytes as the shape needs."""
        if type(body) is not list or len(body) != 3 or type(body[0]) is not int:
            raise ValueError("malformed array")
        index, dtype, shape = body
        if type(dtype) is not str or type(shape) is not list or len(shape) > 32:
            raise ValueError("malformed array")
        if not all(type(n) is int and n >= 0 for n in shape):
            raise ValueError("malformed array shape")
        kind = np.dtype(dtype)
        if not _is_data(kind) or not 0 <= index < len(self._blobs_in):
            raise ValueError("malformed array")
        blob = self._blobs_in[index]
        if math.prod(shape) * kind.itemsize != len(blob):
            raise ValueError("an array's bytes do not match its shape")
        return np.frombuffer(blob, dtype=kind).reshape(shape)

    # ---------------------------------------------------------------- transport
    def _send(self, message: dict) -> None:
        """One message: a header (the JSON's length, how many blobs), the
        JSON, then each blob (arrays' bytes) after its length."""
        if self.released:
            message["release"], self.released = self.released, []
        data = json.dumps(message).encode()
        blobs, self._blobs_out = self._blobs_out, []
        parts = [_HEADER.pack(len(data), len(blobs)), data]
        for blob in blobs:
            parts += [_BLOB.pack(len(blob)), blob]
        try:
            self.sock.sendall(b"".join(parts))  # one system call for a small message
        except OSError as error:
            self._break(f"the kernel is gone ({error})")

    def _recv_exactly(self, size: int) -> bytearray:
        """The next ``size`` bytes.  Each read asks for at least ``READ_AHEAD``
        bytes, and what it gets beyond ``size`` (the start of the next part)
        waits in ``_inbox``: a small message arrives in one system call."""
        inbox = self._inbox
        while len(inbox) < size:
            if self.deadline is not None:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    self._break("the student's code ran over the time limit", Timeout)
                self.sock.settimeout(remaining)
            elif self.sock.gettimeout() is not None:
                self.sock.settimeout(None)
            try:
                chunk = self.sock.recv(min(max(size - len(inbox), READ_AHEAD), 1 << 22))
            except TimeoutError:
                self._break("the student's code ran over the time limit", Timeout)
            except OSError as error:
                self._break(f"the kernel is gone ({error})")
            if not chunk:
                self._break("the kernel died")
            inbox += chunk
        part = inbox[:size]
        del inbox[:size]
        return part

    def _recv(self) -> dict:
        size, count = _HEADER.unpack(self._recv_exactly(_HEADER.size))
        if size > MAX_JSON or count > MAX_BLOBS:
            self._break(
                f"the kernel sent a message over the limits ({MAX_JSON} bytes of JSON, "
                f"{MAX_BLOBS} arrays)"
            )
        data = self._recv_exactly(size)
        if size > SCAN_FROM and sum(map(data.count, (b"[", b"{", b","))) > MAX_VALUES:
            self._break(f"the kernel sent a message over the limit of {MAX_VALUES} values")
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            self._break("the kernel broke the protocol")
        if type(message) is not dict:
            self._break("the kernel broke the protocol")
        total, blobs = size, []
        for _ in range(count):
            (length,) = _BLOB.unpack(self._recv_exactly(_BLOB.size))
            total += length
            if total > MAX_MESSAGE:
                self._break(f"the kernel sent a message over the {MAX_MESSAGE} byte limit")
            blobs.append(self._recv_exactly(length))
        self._blobs_in = blobs  # what decode() reads the message's arrays from
        release = message.get("release", [])
        error = message.get("error")
        well_formed_error = error is None or (type(error) is list and len(error) == 2)
        if type(release) is not list or not well_formed_error:
            self._break("the kernel broke the protocol")
        for ref in release:
            if type(ref) is not int:
                self._break("the kernel broke the protocol")
            self.exported.pop(ref, None)
        return message

    def _break(self, why: str, kind: type[ChannelBroken] = ChannelBroken) -> Any:
        self.broken = self.broken or why
        raise kind(why)

    # ---------------------------------------------------------------- requests
    def request(self, op: str, **fields: Any) -> Any:
        """Ask the other side; serve its own requests while waiting (in this
        thread: a question asked from another thread waits for this one)."""
        if self.broken:
            raise ChannelBroken(self.broken)
        if self.trusted and self.deadline is None:  # the grader never waits on a kernel unbounded
            raise ChannelBroken("the grader asked the student's kernel outside a test")
        with self._asking:
            self._next_id += 1
            ident = self._next_id
            message = {"id": ident, "op": op}
            for key, value in fields.items():
                message[key] = value if key in ("name", "reflected") else self.encode(value)
            if self.trusted:
                message["errstate"] = np.geterr()
            self._send(message)
            while True:
                reply = self._recv()
                if "op" in reply:
                    self._serve(reply)
                    continue
                if reply.get("id") != ident:
                    self._break("the kernel broke the protocol")
                if "error" in reply:
                    if self.trusted:
                        self._warn_again(reply.get("warnings"))
                    name, text = reply["error"]
                    raise _remote_exception(str(name), str(text)[:2000])
                try:
                    answer = self.decode(reply.get("ok"))
                    if self.trusted and op == "call" and "changed" in reply:
                        sent = [fields.get("args"), fields.get("kwargs")]
                        _write_back(sent, self.decode(reply["changed"]))
                except (ValueError, KeyError, TypeError, OverflowError, SystemError) as error:
                    self._break(f"the kernel sent a malformed answer ({error})")
                if self.trusted:
                    self._warn_again(reply.get("warnings"))
                return answer

    def _warn_again(self, received: Any) -> None:
        """Raise in the grader the warnings the student's code raised in the
        kernel, at most ``MAX_WARNINGS`` per test (:attr:`warnings_left`)."""
        for item in received[: self.warnings_left] if type(received) is list else []:
            if type(item) is list and len(item) == 2:
                self.warnings_left -= 1
                category = getattr(builtins, str(item[0]), None)
                if not (isinstance(category, type) and issubclass(category, Warning)):
                    category = RuntimeWarning
                warnings.warn(str(item[1])[:2000], category, stacklevel=4)

    def _serve(self, message: dict) -> None:
        reply: dict[str, Any] = {"id": message.get("id")}
        caught: list[warnings.WarningMessage] = []
        try:
            with _as_asked(message, record=not self.trusted) as caught:
                result, changed = self._perform(message)
            with self._asking:
                reply["ok"] = self.encode(result)
                if changed:
                    reply["changed"] = self.encode(changed)
        except BaseException as error:  # the other side's question failed; it hears why
            if isinstance(error, ChannelBroken | KeyboardInterrupt):
                raise
            reply.pop("ok", None)
            reply["error"] = [type(error).__name__, str(error)[:2000]]
        if caught:
            reply["warnings"] = [
                [w.category.__name__, str(w.message)[:2000]] for w in caught[:MAX_WARNINGS]
            ]
        with self._asking:
            self._send(reply)

    def _perform(self, message: dict) -> tuple[Any, list | None]:
        """The answer to ``message``, and for a call served to the grader, the
        arrays among its arguments that the call changed in place and its
        random generators, as ``[path, value]`` pairs (see :func:`_mutables`)."""
        op = message.get("op")
        if op == "lookup":
            if self.namespace is None:
                raise PermissionError("lookups are not served here")
            name = str(message.get("name"))
            if name not in self.namespace:
                raise NameError(f"name {name!r} is not defined")
            return self.namespace[name], None
        asked_of = message.get("target")
        if self.trusted and asked_of is not None and (
            type(asked_of) is not dict or list(asked_of) != ["own"]
        ):  # the kernel asks things only of what the grader gave it, never of data it sent
            raise PermissionError("the grader serves only its own objects")
        target = self.decode(asked_of) if asked_of is not None else None
        if op == "call":
            args = self.decode(message.get("args", {"l": []}))
            kwargs = self.decode(message.get("kwargs", {"d": []}))
            if self.trusted:
                if type(args) is not list or len(args) > 64 or type(kwargs) is not dict:
                    raise PermissionError("a call takes at most 64 arguments, as a list")
                _check_callable(target)
                args, kwargs = _bounded(target, args, kwargs)
                return target(*args, **kwargs), None
            before = [
                (path, a, a.copy() if isinstance(a, np.ndarray) else None)
                for path, a in _mutables([args, kwargs])
            ]
            result = target(*args, **kwargs)
            changed = [  # a generator's state, whether drawn from or not
                [list(path), a]
                for path, a, copy in before
                if copy is None or not np.array_equal(a, copy, equal_nan=a.dtype.kind in "fc")
            ]
            return result, changed
        return self._perform_other(op, target, message), None

    def _perform_other(self, op: Any, target: Any, message: dict) -> Any:
        if op == "getattr":
            name = str(message.get("name"))
            generator = isinstance(target, np.random.Generator | np.random.RandomState)
            readable = (generator and not name.startswith("_")) or (
                name in GRADER_NAMES
                and isinstance(target, types.FunctionType | types.BuiltinFunctionType | np.ufunc)
            )
            if self.trusted and not readable:
                raise AttributeError(
                    f"the grader's {type(target).__name__} has no {name!r} for you"
                )
            return getattr(target, name)
        if self.trusted:
            name, args = message.get("name"), self.decode(message.get("args", {"l": []}))
            if (
                op != "op" or message.get("reflected") or target is None
                or name not in GRADER_OPERATORS or type(args) is not list or len(args) > 1
            ):  # fmt: skip
                raise PermissionError(f"{name or op!r} is not served for the grader's objects")
            return GRADER_OPERATORS[name](target, *args)
        if op == "setattr":
            setattr(target, str(message.get("name")), self.decode(message.get("value")))
            return None
        if op == "op":
            function = OPERATORS[str(message.get("name"))]
            args = self.decode(message.get("args", {"l": []}))
            if message.get("reflected"):
                return function(*args)
            return function(target, *args)
        raise PermissionError(f"unknown request {op!r}")

    def serve_forever(self) -> None:
        """Answer requests until the other side hangs up (the kernel's end)."""
        while True:
            try:
                message = self._recv()
            except ChannelBroken:
                return
            if "op" in message:
                self._serve(message)


@contextlib.contextmanager
def _as_asked(message: dict, record: bool) -> Iterator[list[warnings.WarningMessage]]:
    """Serve a request under the numpy error state the grader sent, recording
    the warnings raised meanwhile (the kernel's end only)."""
    if not record:
        yield []
        return
    with contextlib.ExitStack() as stack:
        state = message.get("errstate")
        if type(state) is dict:  # the modes a kernel can honour on its own ("call" cannot)
            wanted = {
                k: v
                for k, v in state.items()
                if k in ("divide", "over", "under", "invalid") and v in _ERROR_MODES
            }
            stack.enter_context(np.errstate(**wanted))
        # the kernel's own filters decide, as they would for a test run in the kernel
        yield stack.enter_context(warnings.catch_warnings(record=True))


def _mutables(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, value) for every numeric array and random generator in data as
    it travels, through lists, tuples (the items they hold) and exact dicts
    (their string and int keys), as :meth:`Channel.encode` sends them."""
    if (isinstance(data, np.ndarray) and data.dtype.kind in "biufc") or type(
        data
    ) is np.random.Generator:
        yield path, data
    elif isinstance(data, list | tuple):
        base = list if isinstance(data, list) else tuple
        for i, item in enumerate(base.__iter__(data)):
            yield from _mutables(item, (*path, i))
    elif type(data) is dict:
        for key, item in data.items():
            if type(key) in (str, int):
                yield from _mutables(item, (*path, key))


def _write_back(sent: Any, changed: Any) -> None:
    """Copy into the test's arrays and random generators what the student's
    call did to them: ``changed`` holds ``[path, value]`` pairs, a path leading
    through the arguments as they were sent to a generator of the same kind
    (it takes the state the call left), or to a numeric array of the same
    dtype, and of the same shape unless the call reshaped it in place
    (``b.shape = (1, -1)``), which the test's array is too."""
    if type(changed) is not list:
        raise ValueError("malformed list of changed arguments")
    targets = dict(_mutables(sent))
    for item in changed:
        if type(item) is not list or len(item) != 2 or type(item[0]) is not list:
            raise ValueError("malformed changed argument")
        path, array = tuple(item[0]), item[1]
        target = targets.get(path)
        if type(target) is np.random.Generator and type(array) is np.random.Generator:
            before, after = target.bit_generator.state, array.bit_generator.state
            if (after["bit_generator"], after["state"]["inc"]) != (  # draws change neither
                before["bit_generator"], before["state"]["inc"]
            ):
                raise ValueError(f"the generator at {path} came back of another kind")
            target.bit_generator.state = array.bit_generator.state
            continue
        if type(target) is not np.ndarray or type(array) is not np.ndarray:
            raise ValueError(f"no array of the test's at {path}")
        if target.size != array.size or target.dtype != array.dtype:
            raise ValueError(f"the array at {path} came back with another size or dtype")
        if target.flags.writeable:
            try:
                target.shape = array.shape
            except AttributeError:  # numpy cannot reshape it in place either
                raise ValueError(f"the array at {path} cannot take its new shape") from None
            target[...] = array


# The methods of a random generator the kernel may call: samplers whose work is
# bounded by the numbers they return (not bytes(n), spawn(n), or
# multivariate_hypergeometric, whose work grows with its counts).
SAMPLERS = frozenset({
    "random", "standard_normal", "normal", "uniform", "integers", "choice", "permutation",
    "permuted", "shuffle", "exponential", "standard_exponential", "binomial", "poisson",
    "beta", "gamma", "standard_gamma", "laplace", "logistic", "lognormal",
    "rand", "randn", "randint", "random_sample",  # numpy.random.RandomState's names
})  # fmt: skip


def _check_callable(target: Any) -> None:
    """What the kernel may call of the grader's: the test's functions, numpy's
    ufuncs and functions, a random generator's samplers (:data:`SAMPLERS`);
    no builtins like ``eval``, ``open`` or ``getattr``, no classes, no modules."""
    allowed = isinstance(target, types.FunctionType | np.ufunc) or (
        isinstance(target, types.MethodType | types.BuiltinMethodType)
        and isinstance(
            getattr(target, "__self__", None), np.random.Generator | np.random.RandomState
        )
        and target.__name__ in SAMPLERS
    )
    if not allowed:
        what = getattr(target, "__name__", type(target).__name__)
        raise PermissionError(f"the grader's {what} cannot be called from here")


def _numbers(value: Any) -> Any:
    """An argument of a call the kernel asks of the grader's numpy, as the call
    gets it: a sequence, an array or a handle to the kernel's object becomes an
    array of numbers (fetched once, so what was checked is what is used), and
    a number, a string (an option's name), a number's type or dtype or None
    stays as it is.  Anything else, or an array of anything but numbers, is
    refused."""
    if value is None or type(value) in (bool, int, float, complex, str):
        return value
    if (type(value) is type or isinstance(value, np.dtype)) and _number_dtype(value):
        return value
    if isinstance(value, np.generic | np.ndarray | list | tuple | Proxy):
        try:
            array = np.asarray(value)
        except ValueError:
            raise ValueError("the grader's numpy takes no ragged sequence from here") from None
        if array.dtype.kind not in "biufc":
            raise TypeError(f"the grader's numpy takes numbers from here, not {array.dtype}")
        return array
    raise TypeError(f"the grader's numpy takes numbers from here, not a {type(value).__name__}")


def _count(value: Any) -> int | None:
    """``value`` as a count of numbers (an integer, also in a 0-d array), else None."""
    if isinstance(value, int | np.integer) or (
        isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu"
    ):
        return operator.index(value[()] if isinstance(value, np.ndarray) else value)
    return None


def _number_dtype_named(name: Any) -> np.dtype:
    """The dtype of numbers or bools that ``name`` (as ``np.dtype(...).str``
    sent it) names, or ValueError."""
    try:
        kind = np.dtype(name) if type(name) is str and len(name) <= 8 else None
    except TypeError:
        kind = None
    if kind is None or kind.type not in _NUMBER_TYPES or not _is_data(kind):
        raise ValueError("malformed dtype")
    return kind


def _generator(state: Any) -> np.random.Generator:
    """A random generator whose bit generator has ``state``, as numpy gives
    it: every field checked, since numpy does not check them all."""
    fields = ("bit_generator", "state", "has_uint32", "uinteger")
    if type(state) is not dict or tuple(state) != fields or type(state["state"]) is not dict:
        raise ValueError("malformed random generator")
    name, core = state["bit_generator"], state["state"]
    numbers = [core.get("state"), core.get("inc"), state["has_uint32"], state["uinteger"]]
    if (
        type(name) is not str
        or name not in BIT_GENERATORS
        or tuple(core) != ("state", "inc")
        or any(type(n) is not int for n in numbers)
        or not (0 <= numbers[0] < 2**128 and 0 <= numbers[1] < 2**128 and numbers[1] % 2)
        or numbers[2] not in (0, 1)
        or not 0 <= numbers[3] < 2**32
    ):
        raise ValueError("malformed random generator")
    bit_generator = BIT_GENERATORS[name](0)
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise ValueError(f"malformed random generator ({error})") from None
    return np.random.Generator(bit_generator)


def _number(body: Any) -> np.generic:
    """One of numpy's numbers from ``[dtype, value]``: a float's value as its
    repr (inf and nan survive JSON), an integer's or a bool's as itself."""
    if type(body) is not list or len(body) != 2:
        raise ValueError("malformed number")
    kind, value = _number_dtype_named(body[0]), body[1]
    if kind.kind == "f" and type(value) is str and len(value) <= 32:
        return kind.type(float(value))
    if (kind.kind in "iu" and type(value) is int) or (kind.kind == "b" and type(value) is bool):
        return kind.type(value)  # an integer out of its type's range: OverflowError
    raise ValueError("malformed number")


def _number_dtype(dtype: Any) -> bool:
    """Whether ``dtype`` (as a call's ``dtype=``) is None or names a number's:
    by name, as a dtype or as a type (``np.float32``)."""
    if dtype is None:
        return True
    if type(dtype) is type:
        named = dtype in _NUMBER_TYPES or _PYTHON_NUMBER_TYPES.get(dtype.__name__) is dtype
    else:  # a name as short as a number's ("float64"): numpy parses any length slowly
        named = (type(dtype) is str and len(dtype) <= 16) or isinstance(dtype, np.dtype)
    kind = np.dtype(dtype) if named else None
    return kind is not None and kind.kind in "biufc" and kind.itemsize <= 16


def _bounded(target: Any, args: list, kwargs: dict) -> tuple[list, dict]:
    """The arguments for a call of numpy's (a ufunc, a random generator's
    sampler) that the kernel asks of the grader, checked so that the call
    makes no more than ``MAX_ELEMENTS`` numbers (what one answer may carry) of
    at most 16 bytes each: the grader, which has no memory limit, never
    allocates for the student what the student's kernel may not.  Only numbers
    go in (so only numbers come out, sent back rather than kept), into none of
    the grader's arrays (``out=``, ``where=``), in no dtype but a number's.
    Counted: the broadcast of the array arguments and the ``size`` asked for,
    and for ``choice`` and ``permutation`` the population they draw from and
    the rows of an array population."""
    if isinstance(target, types.FunctionType):  # the test's own function: as the test wrote it
        return args, kwargs
    if {"out", "where", "signature"} & set(kwargs) or not _number_dtype(kwargs.get("dtype")):
        raise PermissionError(
            "the grader's numpy takes no out=, where=, signature= or dtype= but a number's "
            "from here"
        )
    if isinstance(target, np.ufunc):
        if set(kwargs) - {"dtype", "casting", "order"}:  # sig= is signature= too
            raise PermissionError(
                "the grader's ufuncs take no keywords but dtype=, casting= and order= from here"
            )
        if target.signature is not None:  # matmul and other generalised ufuncs
            raise PermissionError(f"the grader's {target.__name__} cannot be called from here")
        args = [_numbers(a) for a in args]
        if any(type(a) is str for a in args):  # numpy's string ufuncs: work grows with the text
            raise TypeError("the grader's numpy takes numbers from here, not a str")
        kwargs = {k: _numbers(v) for k, v in kwargs.items()}
        shapes = [a.shape for a in [*args, *kwargs.values()] if isinstance(a, np.ndarray)]
    else:
        try:
            bound = inspect.signature(target).bind(*args, **kwargs)
        except TypeError:  # arguments the sampler does not take: the call says so itself
            return args, kwargs
        asked = bound.arguments
        if "out" in asked or not _number_dtype(asked.get("dtype")):  # given by position
            raise PermissionError("the grader's numpy takes no out= or dtype= but a number's")
        for name, value in asked.items():
            asked[name] = (
                tuple(_numbers(v) for v in value) if name == "args" else _numbers(value)
            )
        shapes = _sampled(target.__name__, asked)
        args, kwargs = list(bound.args), dict(bound.kwargs)
    if any(math.prod(shape) > MAX_ELEMENTS for shape in shapes):
        raise ValueError(f"the grader makes no array of over {MAX_ELEMENTS} numbers for you")
    try:
        wanted = math.prod(np.broadcast_shapes(*shapes))
    except ValueError:  # shapes numpy cannot broadcast: the call says so itself
        return args, kwargs
    if wanted > MAX_ELEMENTS:
        raise ValueError(f"the grader makes no array of over {MAX_ELEMENTS} numbers for you")
    return args, kwargs


def _sampled(name: str, asked: dict) -> list[tuple[int, ...]]:
    """The shapes whose broadcast bounds what sampler ``name`` makes of the
    (checked) arguments ``asked``; the population of ``choice`` or
    ``permutation`` and the result of ``choice`` on the rows of an array too."""
    asked = dict(asked)
    size = asked.pop("size", asked.pop("args", None))  # rand(3, 4) and randn: sizes as args
    shapes: list[tuple[int, ...]] = []
    drawn: tuple[int, ...] = ()  # the size asked for
    if size is not None:
        with contextlib.suppress(TypeError):  # not a size: the call says so itself
            drawn = tuple(map(operator.index, np.atleast_1d(np.asarray(size, object))))
            shapes.append(drawn)
    for whole in ("x", "a"):  # permutation(n), choice(n, ...): drawn from n numbers
        if (n := _count(asked.get(whole))) is not None:
            shapes.append((n,))
            del asked[whole]
    population = asked.get("a")
    if name == "choice" and isinstance(population, np.ndarray) and population.ndim > 1:
        # each draw is a slice across the axis drawn along: at most this many numbers
        most = math.prod(population.shape) // max(min(population.shape), 1)
        shapes.append((math.prod(drawn) * most,))
    return shapes + [a.shape for a in asked.values() if isinstance(a, np.ndarray)]


class TrustedNamespace(dict):
    """A test cell's globals: the test's own names and the setup cells', and
    for any other name the student's object of that name, looked up in the
    kernel when the test first uses it (builtins stay the grader's). What a
    name refers to is looked up once per test cell (:meth:`forget` starts the
    next): a test calling the student's function a thousand times asks the
    kernel for it once."""

    channel: Channel | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._found: dict[str, Any] = {}

    def forget(self) -> None:
        self._found.clear()

    def __missing__(self, name: str) -> Any:
        if name in self._found:
            return self._found[name]
        if self.channel is None or name in builtins.__dict__:
            raise KeyError(name)
        try:
            found = self.channel.request("lookup", name=name)
        except NameError:
            raise KeyError(name) from None
        self._found[name] = found
        return found


# -------------------------------------------------------------- kernel side
def serve_in_thread(path: str, namespace: MutableMapping[str, Any]) -> None:
    """Connect to the grader at the Unix socket ``path`` and answer its
    requests from ``namespace`` (the kernel's user namespace) in a thread."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    channel = Channel(sock, namespace=namespace)
    threading.Thread(target=channel.serve_forever, name="dlcourse-grader", daemon=True).start()
