"""Adapters from the conformance cases (tests/data/conformance_cases.json) to our API.

The cases were read from deeplearn.js's own tests; each names its call by deeplearn.js's name
(``case["op"]``, e.g. "matMul", "grad:maxPool", "NDArray.randNormal") with camelCase ``attrs``.
``ADAPTERS`` maps that string to a function that makes the call through our API (snake_case
names and arguments, docs/design.md §1) and returns what the case's ``expected`` describes. This is
the one place where strings select behaviour, because the data file is made of strings.

Deliberate departures from deeplearn.js skip their cases in ``SKIPS``, each with its reason; the
same ids are listed in docs/differences.md. Gradient cases (``grad:*``) are computed with each
op's own ``backward`` through NDArrayMath, recorded on a small tape (``Tape``).

Adapter calling convention: ``adapter(math, case) -> result``, where ``result`` is
  * an NDArray (compared with a tensor ``expected``),
  * a dict ``{key: NDArray | list[NDArray]}`` compared key by key with ``expected[key]``, or
  * ``CHECKED`` when the adapter asserted the case's properties itself.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, NDArray, Scalar
from deeplearn.math.ops.linalg import MatrixOrientation

__all__ = ["ADAPTERS", "ALL_CASES", "SKIPS", "CHECKED", "Same", "Tape", "case_params", "tensor", "is_math_case"]

CHECKED = object()
"""Returned by an adapter that asserted everything itself."""


class Same(list):  # type: ignore[type-arg]
    """Several results (e.g. a public API and the op's backward) that must each equal the one
    expected tensor."""

Case = dict[str, Any]
Adapter = Callable[[dl.NDArrayMath, Case], Any]

ALL_CASES: list[Case] = json.loads((Path(__file__).resolve().parent / "data/conformance_cases.json").read_text())
"""Every conformance case; tests/test_conformance.py and tests/test_graph_conformance.py each
replay their part."""


def case_params(cases: Sequence[Case], skips: Mapping[str, str]) -> list[Any]:
    """One ``pytest.param`` per case, with the case id as its test id; the cases in ``skips`` are
    skipped with their reason."""
    out = []
    for case in cases:
        marks = [pytest.mark.skip(reason=skips[case["id"]])] if case["id"] in skips else []
        out.append(pytest.param(case, id=case["id"], marks=marks))
    return out

# Ops of the cases another helper replays (graph builder, graph ops, Session, training,
# GraphRunner, input providers, datasets, checkpoints).
_NOT_MATH_PREFIXES = ("graph:", "graph.build:", "session.", "train:", "GraphRunner", "InCPUMemory",
                      "InGPUMemory", "InMemoryDataset", "CheckpointLoader")


def is_math_case(case: Case) -> bool:
    """Whether the case belongs to this replay (math ops, NDArray, scopes, eager gradients)."""
    return not case["op"].startswith(_NOT_MATH_PREFIXES)


# -- departures ----------------------------------------------------------------------------------

_SENTINELS = ("docs/design.md §4 departure: int32/bool NaN follow NumPy, not deeplearn.js's sentinels "
              "(-2147483648 / 255 are ordinary values here)")
_ARGMAX_NAN = ("docs/design.md §4 departure: arg_max/arg_min with NaN follow NumPy (the index of the first "
               "NaN), not deeplearn.js's NaN sentinel")
_COPY2D = "docs/design.md §4 departure: copy2D was removed after deeplearn.js 0.3.13 and is not provided"
_FROM_PIXELS = ("departure (docs/differences.md): fromPixels reads browser ImageData/<img>/<canvas>/<video> "
                "objects, which have no Python equivalent; use NDArray.from_numpy")

SKIPS: dict[str, str] = {
    "relu.nan_int32": _SENTINELS,
    "relu.nan_bool": _SENTINELS,
    "argMax.nan": _ARGMAX_NAN,
    "argMin.nan": _ARGMAX_NAN,
    "argMaxEquals.nan": _ARGMAX_NAN,
    "v010.argMax.nan": _ARGMAX_NAN,
    "v010.argMin.nan": _ARGMAX_NAN,
    "v010.argMaxEquals.nan": _ARGMAX_NAN,
    "v010.copy2D.basic": _COPY2D,
    "v010.copy2D.source_oob_throws": _COPY2D,
    "v010.copy2D.dest_oob_throws": _COPY2D,
    "ndarray.fromPixels_2x2x3": _FROM_PIXELS,
}


# -- decoding ------------------------------------------------------------------------------------


def decode_values(values: Any) -> np.ndarray:
    """Flat JSON values → float64 NumPy ("NaN" → nan)."""
    return np.array([np.nan if v == "NaN" else v for v in values], dtype=np.float64)


_DESCRIBED: dict[str, Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]] = {
    # Inputs the cases describe in words; such cases check shapes, errors or properties only.
    "random normal": lambda rng, shape: rng.standard_normal(shape),
    "random": lambda rng, shape: rng.random(shape),
    "values[i]=60-i": lambda rng, shape: 60.0 - np.arange(int(np.prod(shape))),
}


def tensor(spec: dict[str, Any], rng: np.random.Generator | None = None) -> NDArray:
    """A case's tensor ``{shape, values, dtype?}`` as an NDArray on ENV.math's backend."""
    shape = tuple(spec["shape"])
    dtype = spec.get("dtype", "float32")
    values = spec["values"]
    if isinstance(values, str):
        maker = _DESCRIBED[values]  # KeyError: a new description needs an entry above
        data = maker(rng or np.random.default_rng(0), shape)
    else:
        data = decode_values(values)
    if dtype == "int32":
        return NDArray.make(shape, data.astype(np.int64), "int32")
    if dtype == "bool":
        return NDArray.make(shape, data != 0, "bool")
    return NDArray.make(shape, data.reshape(shape), dtype)


def inputs(case: Case) -> list[NDArray]:
    rng = np.random.default_rng(0)
    return [tensor(spec, rng) for spec in case["inputs"]]


def named_inputs(case: Case) -> dict[str, NDArray]:
    return dict(zip(case["attrs"]["input_names"], inputs(case)))


def _ord(value: Any) -> Any:
    """JSON ord of norm: "Infinity" → inf; strings such as "euclidean" and numbers as they are."""
    return {"Infinity": np.inf, "-Infinity": -np.inf}.get(value, value) if isinstance(value, str) else value


def _snake(name: str) -> str:
    """deeplearn.js camelCase → our snake_case (docs/design.md §1): matMul → mat_mul, slice2D → slice2d."""
    name = re.sub(r"(\d)D\b", lambda m: m.group(1) + "d", name)
    name = re.sub(r"(\d)D(?=[A-Z])", lambda m: m.group(1) + "d", name)
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _method(math: dl.NDArrayMath, js_name: str) -> Callable[..., Any]:
    name = _snake(js_name)
    fn = getattr(math, name, None)
    if fn is None:
        raise AssertionError(f"NDArrayMath has no method {name!r} (deeplearn.js {js_name!r})")
    return fn  # type: ignore[no-any-return]


def _quiet(fn: Callable[..., Any], *args: Any) -> Any:
    """Calls a possibly deprecated alias (scalar_plus_array & co.) without its warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(*args)


def pick(result: Any, name: str, index: int) -> Any:
    """Field ``name`` of a multi-part result: a dict, a plain tuple/list (by ``index``), or an
    object with attributes (a NamedTuple or dataclass)."""
    if isinstance(result, dict):
        return result[name]
    if isinstance(result, list) or (isinstance(result, tuple) and not hasattr(result, "_fields")):
        return result[index]
    return getattr(result, name)


_FIELD_ALIASES = {"padInfo": "pad"}  # Conv2DInfo.pad holds deeplearn.js's padInfo


def field(obj: Any, camel: str) -> Any:
    """A camelCase field of a result object (snake_case attribute, dict key, or camelCase)."""
    for key in (_snake(camel), camel, _FIELD_ALIASES.get(camel, camel)):
        if isinstance(obj, dict) and key in obj:
            return obj[key]
        if hasattr(obj, key):
            return getattr(obj, key)
    raise AssertionError(f"result {obj!r} has no field {_snake(camel)!r} (deeplearn.js {camel!r})")


# -- eager gradients through each op's backward --------------------------------------------------


class Tape:
    """Records the ops NDArrayMath runs, then backpropagates through their ``backward``.

    Gradients are accumulated per storage (flat), so an op input that is a reshape view of an
    earlier output, or of a variable, still receives its gradient.
    """

    def __init__(self, math: dl.NDArrayMath) -> None:
        self.math = math
        self.records: list[tuple[Any, tuple[NDArray, ...], Any]] = []

    def __enter__(self) -> Tape:
        engine = self.math.engine
        run = engine.run

        def recording_run(op: Any, *args: NDArray) -> Any:
            out = run(op, *args)
            self.records.append((op, args, out))
            return out

        engine.run = recording_run  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.math.engine.run  # back to the class's method

    def gradients(self, y: NDArray, wrt: Sequence[NDArray], dy: NDArray | None = None) -> list[NDArray | None]:
        math = self.math
        grads: dict[int, NDArray] = {}

        def add(x: NDArray, g: NDArray) -> None:
            flat = g.reshape([g.size])
            key = id(x.storage)
            grads[key] = flat if key not in grads else math.add(grads[key], flat)

        def get(x: NDArray) -> NDArray | None:
            g = grads.get(id(x.storage))
            return None if g is None else g.reshape(list(x.shape))

        add(y, dy if dy is not None else NDArray.ones_like(y))
        for op, args, out in reversed(self.records):
            if isinstance(out, tuple):
                continue  # multi-output ops do not occur in the gradient cases
            g = get(out)
            if g is None:
                continue
            for x, dx in zip(args, op.backward(math, g, *args, out)):
                if dx is not None:
                    add(x, dx)
        return [get(w) for w in wrt]


_F: dict[str, Callable[..., NDArray]] = {
    "sum(matMul(a,b))": lambda m, a, b: m.sum(m.mat_mul(a, b)),
    "sum(x)": lambda m, x: m.sum(x),
    "sum(sum(x, null, keepDims=true))": lambda m, x: m.sum(m.sum(x, None, True)),
    "square(x)": lambda m, x: m.square(x),
    "sum(square(x))": lambda m, x: m.sum(m.square(x)),
    "multiply(a,b)": lambda m, a, b: m.multiply(a, b),
    "sum(multiply(a,b))": lambda m, a, b: m.sum(m.multiply(a, b)),
    "sum(pow(a,b))": lambda m, a, b: m.sum(m.pow(a, b)),
    "sum(subtract(a,b))": lambda m, a, b: m.sum(m.subtract(a, b)),
    "relu(x)": lambda m, x: m.relu(x),
    "sum(relu(matMul(a,b)))": lambda m, a, b: m.sum(m.relu(m.mat_mul(a, b))),
}


def _grad_of_function(math: dl.NDArrayMath, case: Case) -> dict[str, Any]:
    attrs = case["attrs"]
    xs = inputs(case)
    names = ["x"] if len(xs) == 1 else ["a", "b"]
    with Tape(math) as tape:
        y = _F[attrs["f"]](math, *xs)
    dy = NDArray.make(list(y.shape), np.full(y.size, float(attrs["upstream_dy"])))
    wrt = [xs[names.index(w)] for w in attrs["wrt"]]
    grads = tape.gradients(y, wrt, dy)
    return {"value": y, **{f"grad_{w}": g for w, g in zip(attrs["wrt"], grads)}}


def _conv2d_der(math: dl.NDArrayMath, case: Case) -> Any:
    attrs = case["attrs"]
    xs = named_inputs(case)
    if attrs["api"] == "conv2dDerBias":
        return math.conv2d_der_bias(xs["dy"])
    assert attrs["api"] == "conv2dDerFilter", attrs["api"]
    x, dy, shape = xs["x"], xs["dy"], attrs["filterShape"]
    der = math.conv2d_der_filter(x, dy, shape, attrs["strides"], attrs["pad"])
    # The same gradient through Conv2D's backward (the filter's values do not matter).
    with Tape(math) as tape:
        y = math.conv2d(x, NDArray.zeros(shape), None, attrs["strides"], attrs["pad"])
    (via_backward,) = tape.gradients(y, [_filter_input(tape, y)], dy)
    return Same([der, via_backward])


def _filter_input(tape: Tape, y: NDArray) -> NDArray:
    """The filter input of the recorded conv2d that produced ``y``."""
    for _op, args, out in tape.records:
        if out is y:
            return args[1]
    raise AssertionError("conv2d did not record its op")


def _max_pool_backprop(math: dl.NDArrayMath, case: Case) -> Any:
    attrs = case["attrs"]
    xs = named_inputs(case)
    dy, x = xs["dy"], xs["x"]
    args = (attrs["filterSize"], attrs["strides"], attrs["pad"])
    api = math.max_pool_backprop(dy, x, *args)
    with Tape(math) as tape:
        y = math.max_pool(x, *args)
    (via_backward,) = tape.gradients(y, [x], dy)
    return Same([api, via_backward])


def _grad(math: dl.NDArrayMath, case: Case) -> Any:
    api = case["attrs"].get("api")
    if api in ("conv2dDerFilter", "conv2dDerBias"):
        return _conv2d_der(math, case)
    if api == "maxPoolBackprop":
        return _max_pool_backprop(math, case)
    return _grad_of_function(math, case)


# -- the activation and cost function objects of deeplearn.js's graph (activation_functions.ts,
#    cost_functions.ts): output is the math op, der its derivative through the op's backward ----


def _activation(name: str, part: str) -> Adapter:
    def adapter(math: dl.NDArrayMath, case: Case) -> Any:
        (x,) = inputs(case)
        alpha = case["attrs"].get("alpha")
        call = {
            "tanh": lambda v: math.tanh(v),
            "relu": lambda v: math.relu(v),
            "leaky_relu": lambda v: math.leaky_relu(v, alpha),
            "sigmoid": lambda v: math.sigmoid(v),
            "elu": lambda v: math.elu(v),
        }[name]
        with Tape(math) as tape:
            y = call(x)
        if part == "output":
            return y
        (der,) = tape.gradients(y, [x])  # upstream ones: the element-wise derivative
        assert der is not None
        return der if "first3" not in case["expected"] else {"first3": der.get_values()[:3]}

    return adapter


def _square_cost(part: str) -> Adapter:
    def adapter(math: dl.NDArrayMath, case: Case) -> Any:
        y, target = inputs(case)
        with Tape(math) as tape:
            cost = math.multiply(Scalar.new(0.5), math.square(math.subtract(y, target)))
        if part == "cost":
            return cost
        (der,) = tape.gradients(cost, [y])
        return der

    return adapter


# -- NDArray factories and methods ---------------------------------------------------------------


def _scalar_new(math: dl.NDArrayMath, case: Case) -> Any:
    return Scalar.new(case["inputs"][0]["value"], case["attrs"].get("dtype"))


def _array1d_new(math: dl.NDArrayMath, case: Case) -> Any:
    return Array1D.new(case["inputs"][0]["values"], case["attrs"].get("dtype"))


def _as_type(math: dl.NDArrayMath, case: Case) -> Any:
    (x,) = inputs(case)
    return x.as_type(case["attrs"]["dtype"])


def _index_to_loc(math: dl.NDArrayMath, case: Case) -> Any:
    x = NDArray.zeros(case["inputs"][0]["shape"])
    for index, loc in case["expected"].items():
        assert x.index_to_loc(int(index)) == loc, (index, x.index_to_loc(int(index)), loc)
        assert x.loc_to_index(loc) == int(index)
    return CHECKED


def _random(method: str) -> Adapter:
    def adapter(math: dl.NDArrayMath, case: Case) -> Any:
        a, exp, tol = case["attrs"], case["expected"], case["tolerance"]
        factory = getattr(NDArray, method)
        x = factory(a["shape"], a["mean"], a["stdDev"], None, a["seed"])
        again = factory(a["shape"], a["mean"], a["stdDev"], None, a["seed"])
        assert x.shape == tuple(exp["shape"]) and x.dtype == exp["dtype"]
        assert x.equals(again), "the same seed must give the same values"
        v = x.get_values().astype(np.float64)
        assert abs(v.mean() - exp["mean"]) <= tol, (v.mean(), exp["mean"])
        assert abs(v.std() - exp["std"]) <= tol, (v.std(), exp["std"])
        if "normality" in exp:  # Jarque-Bera below the 5% critical value of chi2(2)
            z = (v - v.mean()) / v.std()
            jb = v.size / 6 * (np.mean(z**3) ** 2 + (np.mean(z**4) - 3) ** 2 / 4)
            assert jb < 5.991, jb
        if "all_abs_values_le" in exp:
            bound = a["mean"] + 2 * a["stdDev"]
            assert np.abs(v).max() <= bound, (np.abs(v).max(), bound)
        return CHECKED

    return adapter


# -- scopes and debug mode -----------------------------------------------------------------------


def _scope_program(math: dl.NDArrayMath, case: Case) -> Any:
    a, b = inputs(case)
    # The case counts arrays relative to "a and b exist".
    base = math.get_num_arrays() - 2
    if case["id"] == "scope.nested_returns":
        # outer scope{ result = scope{ b = addStrict(a, b) x3; return add(a, b) } }
        def inner(keep: Any, track: Any) -> NDArray:
            bb = b
            for _ in range(3):
                bb = math.add_strict(a, bb)
            return math.add(a, bb)

        with math.scope():
            result = math.scope(inner)
            inside = math.get_num_arrays() - base
            values = result.get_values()
        return {"result": values, "numArrays_inside_after_inner_scope": inside,
                "numArrays_after_outer_scope": math.get_num_arrays() - base}
    if case["id"] == "scope.returns_array_list":
        # scope{ add(a, b); return [add(a, b), subtract(a, b)] }, inside an outer scope
        def body(keep: Any, track: Any) -> list[NDArray]:
            math.add(a, b)
            return [math.add(a, b), math.subtract(a, b)]

        with math.scope():
            r0, r1 = math.scope(body)
            inside = math.get_num_arrays() - base
            values = {"result0": r0.get_values(), "result1": r1.get_values()}
        return {**values, "numArrays_inside": inside, "numArrays_after_outer": math.get_num_arrays() - base}
    raise AssertionError(f"no program for {case['id']}")


def _relu_debug_mode(math: dl.NDArrayMath, case: Case) -> Any:
    debug = dl.NDArrayMath(math.backend)  # a separate math, so debug mode ends with the case
    debug.enable_debug_mode()
    (x,) = inputs(case)
    return debug.relu(x)


# -- conv_util -----------------------------------------------------------------------------------


def _conv2d_info(math: dl.NDArrayMath, case: Case) -> Any:
    from deeplearn.math.ops import conv_util  # type: ignore[attr-defined]

    a = case["attrs"]
    in_shape, filter_shape = case["inputs"][0]["inShape"], case["inputs"][1]["filterShape"]
    info = conv_util.compute_conv2d_info(
        in_shape, filter_shape, a["strides"], a["pad"], depthwise=a["depthwise"], data_format=a["dataFormat"]
    )
    for key, want in case["expected"].items():
        got = field(info, key)
        if key == "padInfo":
            for side, v in want.items():
                assert field(got, side) == v, (key, side, got, v)
        else:
            assert list(got) == want if isinstance(want, list) else got == want, (key, got, want)
    return CHECKED


# -- ops with special arguments ------------------------------------------------------------------


def _mat_mul(math: dl.NDArrayMath, case: Case) -> Any:
    a, b = inputs(case)
    attrs = case["attrs"]
    orient = [MatrixOrientation[attrs.get(k, "REGULAR")] for k in ("aOrientation", "bOrientation")]
    return math.mat_mul(a, b, *orient)


def _conv2d(math: dl.NDArrayMath, case: Case) -> Any:
    x, w, bias = inputs(case)
    attrs = case["attrs"]
    pad = attrs["pad"]
    if isinstance(pad, str) and pad.startswith("default"):
        # Graph's default zero pad (conv_util.computeDefaultPad): floor((in·(s−1) − s + f)/2).
        s, f = attrs["strides"], w.shape[0]
        pad = (x.shape[-3] * (s - 1) - s + f) // 2
    y = math.conv2d(x, w, bias, attrs["strides"], pad)
    if case["expected"].get("no_nans"):
        assert not np.isnan(y.get_values()).any()
    return y


def _conv1d(math: dl.NDArrayMath, case: Case) -> Any:
    x, w, bias = inputs(case)
    return math.conv1d(x, w, bias, case["attrs"]["stride"], case["attrs"]["pad"])


def _conv2d_transpose(math: dl.NDArrayMath, case: Case) -> Any:
    x, w = inputs(case)
    a = case["attrs"]
    return math.conv2d_transpose(x, w, a["outputShape"], a["strides"], a["pad"])


def _depthwise(math: dl.NDArrayMath, case: Case) -> Any:
    x, w = inputs(case)
    return math.depthwise_conv2d(x, w, case["attrs"]["strides"], case["attrs"]["pad"])


def _pool(name: str) -> Adapter:
    def adapter(math: dl.NDArrayMath, case: Case) -> Any:
        (x,) = inputs(case)
        a = case["attrs"]
        return getattr(math, name)(x, a["filterSize"], a["strides"], a["pad"])

    return adapter


def _batch_norm(rank: int) -> Adapter:
    def adapter(math: dl.NDArrayMath, case: Case) -> Any:
        xs = named_inputs(case)
        fn = getattr(math, f"batch_normalization{rank}d")
        eps = case["attrs"]["varianceEpsilon"]
        return fn(xs["x"], xs["mean"], xs["variance"], eps, xs.get("scale"), xs.get("offset"))

    return adapter


def _lstm_cell(math: dl.NDArrayMath, case: Case) -> Any:
    # Inputs described in words: a batch of 2 identical rows must give 2 identical rows.
    rng = np.random.default_rng(1)
    kernel = NDArray.from_numpy(rng.standard_normal((3, 4)))
    bias = NDArray.from_numpy(rng.standard_normal(4))
    row = rng.standard_normal(2)
    data = NDArray.from_numpy(np.stack([row, row]))
    c = NDArray.from_numpy(np.full((2, 1), rng.standard_normal()))
    h = NDArray.from_numpy(np.full((2, 1), rng.standard_normal()))
    forget_bias = Scalar.new(case["attrs"]["forgetBias"])
    new_c, new_h = math.basic_lstm_cell(forget_bias, kernel, bias, data, c, h)
    assert new_c.shape == (2, 1) and new_h.shape == (2, 1)
    # Equal up to float32 rounding (a BLAS may order the sums of two rows differently).
    assert abs(new_c.get(0, 0) - new_c.get(1, 0)) <= 1e-6 and abs(new_h.get(0, 0) - new_h.get(1, 0)) <= 1e-6
    return CHECKED


def _multi_rnn_cell(math: dl.NDArrayMath, case: Case) -> Any:
    xs = named_inputs(case)
    forget_bias = Scalar.new(case["attrs"]["forgetBias"])
    cells = [
        functools.partial(math.basic_lstm_cell, forget_bias, xs[f"lstmKernel{k}"], xs[f"lstmBias{k}"])
        for k in (1, 2)
    ]
    new_c, new_h = math.multi_rnn_cell(cells, xs["data"], [xs["c0"], xs["c1"]], [xs["h0"], xs["h1"]])
    return {"newC": list(new_c), "newH": list(new_h)}


def _multinomial(math: dl.NDArrayMath, case: Case) -> Any:
    (probs,) = inputs(case)
    exp = case["expected"]
    y = math.multinomial(probs, case["attrs"]["numSamples"])
    assert y.shape == tuple(exp["shape"]) and y.dtype == exp["dtype"]
    counts = np.bincount(y.get_values(), minlength=probs.size) / y.size
    np.testing.assert_allclose(counts, exp["outcome_frequencies"], atol=case["tolerance"])
    return CHECKED


def _moments(math: dl.NDArrayMath, case: Case) -> Any:
    (x,) = inputs(case)
    result = math.moments(x, *_axis_keep(case))
    return {"mean": pick(result, "mean", 0), "variance": pick(result, "variance", 1)}


def _top_k(math: dl.NDArrayMath, case: Case) -> Any:
    (x,) = inputs(case)
    result = math.top_k(x, case["attrs"]["k"])
    return {"values": pick(result, "values", 0), "indices": pick(result, "indices", 1)}


def _norm(math: dl.NDArrayMath, case: Case) -> Any:
    (x,) = inputs(case)
    a = case["attrs"]
    return math.norm(x, _ord(a.get("ord", "euclidean")), a.get("axis"), a.get("keepDims", False))


def _axis_keep(case: Case) -> list[Any]:
    a = case["attrs"]
    return [a.get("axis"), a.get("keepDims", False)]


def _reduction(js_name: str) -> Adapter:
    def adapter(math: dl.NDArrayMath, case: Case) -> Any:
        (x,) = inputs(case)
        return _method(math, js_name)(x, *_axis_keep(case))

    return adapter


def _arg(js_name: str) -> Adapter:
    def adapter(math: dl.NDArrayMath, case: Case) -> Any:
        (x,) = inputs(case)
        axis = case["attrs"].get("axis")
        fn = _method(math, js_name)
        return fn(x) if axis is None else fn(x, axis)

    return adapter


def _softmax(math: dl.NDArrayMath, case: Case) -> Any:
    (x,) = inputs(case)
    dim = case["attrs"].get("dim")
    return math.softmax(x) if dim is None else math.softmax(x, dim)


def _with_attrs(js_name: str, *keys: str) -> Adapter:
    """Calls ``math.<js_name>(*inputs, *attrs[keys])``: the plain positional mapping."""

    def adapter(math: dl.NDArrayMath, case: Case) -> Any:
        a = case["attrs"]
        return _quiet(_method(math, js_name), *inputs(case), *(a[k] for k in keys if k in a))

    return adapter


def _one_hot(math: dl.NDArrayMath, case: Case) -> Any:
    (indices,) = inputs(case)
    a = case["attrs"]
    extra = [a[k] for k in ("onValue", "offValue") if k in a]
    return math.one_hot(indices.as_type("int32"), a["depth"], *extra)


def _scaled_array_add(math: dl.NDArrayMath, case: Case) -> Any:
    xs = named_inputs(case)
    return math.scaled_array_add(xs["c1"], xs["a"], xs["c2"], xs["b"])


def _resize_bilinear(math: dl.NDArrayMath, case: Case) -> Any:
    (x,) = inputs(case)
    a = case["attrs"]
    return math.resize_bilinear3d(x, a["newShape2D"], a["alignCorners"])


_PLAIN = [
    # element-wise unary
    "neg", "exp", "log", "sqrt", "square", "abs", "ceil", "floor", "relu", "elu", "selu", "sigmoid",
    "tanh", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "clone",
    # binary
    "add", "subtract", "multiply", "divide", "pow", "maximum", "minimum", "equal", "addStrict",
    "subStrict", "multiplyStrict", "divideStrict", "powStrict", "equalStrict", "maximumStrict",
    "minimumStrict", "prelu", "preluDer", "argMaxEquals",
    # scalar-array helpers (deprecated aliases in 0.3.x)
    "scalarPlusArray", "scalarMinusArray", "arrayMinusScalar", "scalarTimesArray",
    "scalarDividedByArray", "arrayDividedByScalar",
    # linear algebra and layout
    "vectorTimesMatrix", "matrixTimesVector", "dotProduct", "outerProduct", "concat1D",
]

ADAPTERS: dict[str, Adapter] = {
    **{name: _with_attrs(name) for name in _PLAIN},
    "step": _with_attrs("step", "alpha"),
    "leakyRelu": _with_attrs("leakyRelu", "alpha"),
    "clip": _with_attrs("clip", "min", "max"),
    "transpose": _with_attrs("transpose", "perm"),
    "tile": _with_attrs("tile", "reps"),
    "slice1D": _with_attrs("slice1D", "begin", "size"),
    "slice2D": _with_attrs("slice2D", "begin", "size"),
    "slice3D": _with_attrs("slice3D", "begin", "size"),
    "slice4D": _with_attrs("slice4D", "begin", "size"),
    "concat2D": _with_attrs("concat2D", "axis"),
    "concat3D": _with_attrs("concat3D", "axis"),
    "concat4D": _with_attrs("concat4D", "axis"),
    "matMul": _mat_mul,
    "norm": _norm,
    "sum": _reduction("sum"),
    "mean": _reduction("mean"),
    "min": _reduction("min"),
    "max": _reduction("max"),
    "logSumExp": _reduction("logSumExp"),
    "moments": _moments,
    "argMax": _arg("argMax"),
    "argMin": _arg("argMin"),
    "softmax": _softmax,
    "topK": _top_k,
    "oneHot": _one_hot,
    "multinomial": _multinomial,
    "scaledArrayAdd": _scaled_array_add,
    "conv2d": _conv2d,
    "conv1d": _conv1d,
    "conv2dTranspose": _conv2d_transpose,
    "depthwiseConv2D": _depthwise,
    "maxPool": _pool("max_pool"),
    "minPool": _pool("min_pool"),
    "avgPool": _pool("avg_pool"),
    "resizeBilinear3D": _resize_bilinear,
    "batchNormalization2D": _batch_norm(2),
    "batchNormalization3D": _batch_norm(3),
    "batchNormalization4D": _batch_norm(4),
    "basicLSTMCell": _lstm_cell,
    "multiRNNCell(basicLSTMCell x2)": _multi_rnn_cell,
    "grad:matMul": _grad,
    "grad:conv2d": _grad,
    "grad:maxPool": _grad,
    "grad:sum": _grad,
    "grad:square": _grad,
    "grad:multiply": _grad,
    "grad:pow": _grad,
    "grad:subtract": _grad,
    "grad:relu": _grad,
    "grad:sum(relu(matMul))": _grad,
    "TanHFunc.output": _activation("tanh", "output"),
    "TanHFunc.der": _activation("tanh", "der"),
    "ReLUFunc.output": _activation("relu", "output"),
    "ReLUFunc.der": _activation("relu", "der"),
    "LeakyReluFunc(0.2).output": _activation("leaky_relu", "output"),
    "LeakyReluFunc(0.2).der": _activation("leaky_relu", "der"),
    "SigmoidFunc.output": _activation("sigmoid", "output"),
    "SigmoidFunc.der": _activation("sigmoid", "der"),
    "EluFunc.output": _activation("elu", "output"),
    "EluFunc.der": _activation("elu", "der"),
    "SquareCostFunc.cost": _square_cost("cost"),
    "SquareCostFunc.der": _square_cost("der"),
    "Scalar.new": _scalar_new,
    "Array1D.new": _array1d_new,
    "asType": _as_type,
    "indexToLoc": _index_to_loc,
    "NDArray.randNormal": _random("rand_normal"),
    "NDArray.randTruncatedNormal": _random("rand_truncated_normal"),
    "math.scope": _scope_program,
    "relu(debugMode)": _relu_debug_mode,
    "computeConv2DInfo": _conv2d_info,
}
