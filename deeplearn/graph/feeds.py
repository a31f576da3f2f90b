"""Feeds: how data reaches a Session call's placeholders.

A feed names a tensor and gives its data: an NDArray (or array-like values), or an
InputProvider from which a training call draws its batch. ``normalize_feeds`` accepts the three
forms users write; ``load_feeds`` turns them into the call's values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deeplearn.data.input_provider import InputProvider, check_count, next_batch, next_batch_rows
from deeplearn.graph.graph import Tensor
from deeplearn.math.ndarray import NDArray
from deeplearn.types import ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = [
    "EXAMPLES",
    "ROWS",
    "FeedEntry",
    "Feeds",
    "Rows",
    "alias",
    "as_feed_array",
    "check_batch_size",
    "load_feeds",
    "normalize_feeds",
    "provider_feeds",
    "row_bindings",
    "same_feeds",
]


@dataclass(frozen=True)
class FeedEntry:
    """Data for one tensor: an NDArray (or an array-like, converted), or an InputProvider."""

    tensor: Tensor
    data: Any


Feeds = Sequence[FeedEntry | Mapping[str, Any]] | Mapping[Tensor, Any] | None


def normalize_feeds(feeds: Feeds, where: str) -> list[FeedEntry]:
    """The three accepted forms of feeds as one list of FeedEntry: a list of
    ``FeedEntry(tensor, data)``, a list of ``{"tensor": t, "data": d}`` dicts (the seed's object
    literals), or a ``{tensor: data}`` mapping.

    Example:
        >>> g = dl.Graph(); x = g.placeholder("x", [])
        >>> a = normalize_feeds([{"tensor": x, "data": Scalar.new(1)}], "eval")
        >>> b = normalize_feeds({x: Scalar.new(1)}, "eval")
        >>> a[0].tensor is b[0].tensor is x
        True
    """
    if feeds is None:
        return []
    if isinstance(feeds, Mapping):
        if any(isinstance(k, str) for k in feeds):
            items: list[Any] = [feeds]  # one {"tensor": t, "data": d} entry given without its list
        else:
            items = [FeedEntry(t, d) for t, d in feeds.items()]
    elif isinstance(feeds, (list, tuple)):
        items = list(feeds)
    else:
        raise TypeError(
            f"{where}: feeds must be a list of FeedEntry or {{'tensor', 'data'}} dicts, or a "
            f"{{tensor: data}} mapping; got {type(feeds).__name__}."
        )
    out: list[FeedEntry] = []
    seen: set[Tensor] = set()
    for item in items:
        if isinstance(item, FeedEntry):
            entry = item
        elif isinstance(item, Mapping) and set(item) == {"tensor", "data"}:
            entry = FeedEntry(item["tensor"], item["data"])
        else:
            raise TypeError(
                f"{where}: each feed must be a FeedEntry(tensor, data) or a "
                f"{{'tensor': t, 'data': d}} dict; got {item!r}."
            )
        if not isinstance(entry.tensor, Tensor):
            raise TypeError(f"{where}: a feed's tensor must be a Tensor; got {entry.tensor!r}.")
        if entry.tensor in seen:
            raise ValueError(f"{where}: each tensor may be fed once; got two feeds for {entry.tensor!r}.")
        seen.add(entry.tensor)
        out.append(entry)
    return out


Rows = dict[Tensor, tuple[NDArray, NDArray]]
"""Batches still to gather: per fed tensor, (the examples, the batch's int32 row indices)."""

EXAMPLES, ROWS = "examples", "rows"
"""The keys' first items under which a batch still to gather binds its inputs: (EXAMPLES, t)
and (ROWS, t) for fed tensor t (``row_bindings``)."""


def provider_feeds(feeds: Feeds, where: str, why: str = "") -> list[FeedEntry]:
    """``normalize_feeds(feeds, where)``, each entry's data an InputProvider, else a TypeError
    naming ``where`` (and ``why``, said after "every feed must be an InputProvider").

    Example:
        >>> g = dl.Graph(); x = g.placeholder("x", [])
        >>> provider_feeds({x: Scalar.new(1)}, "Session.train")
        Traceback (most recent call last):
        TypeError: Session.train: every feed must be an InputProvider; got Scalar for Tensor('x', shape=()).
    """
    entries = normalize_feeds(feeds, where)
    for e in entries:
        if not isinstance(e.data, InputProvider):
            raise TypeError(
                f"{where}: every feed must be an InputProvider{why}; got {type(e.data).__name__} for {e.tensor!r}."
            )
    return entries


def row_bindings(rows: Rows) -> dict[Any, NDArray]:
    """The inputs of the batches still to gather, under keys of their own: the examples (which
    a captured step reads where they are: borrowed) and the row indices.

    Example:
        >>> g = dl.Graph(); x = g.placeholder("x", [2])
        >>> examples, rows = Array2D.new([3, 2], [1, 2, 3, 4, 5, 6]), Array1D.new([2, 0], "int32")
        >>> sorted(k[0] for k in row_bindings({x: (examples, rows)}))
        ['examples', 'rows']
    """
    bound: dict[Any, NDArray] = {}
    for t, (examples, indices) in rows.items():
        bound[(EXAMPLES, t)] = examples
        bound[(ROWS, t)] = indices
    return bound


def same_feeds(feeds: Feeds, entries: list[FeedEntry]) -> bool:
    """Whether ``feeds`` holds exactly the tensors and data of ``entries`` (the same objects),
    in a form that ``normalize_feeds`` turns into ``entries``: then ``entries`` stand for it.
    A training loop passes the same feeds every call, as one object or written out anew each
    time (``{x: provider}``); this spares it their checks.

    Example:
        >>> g = dl.Graph(); x = g.placeholder("x", []); one = Scalar.new(1)
        >>> entries = normalize_feeds([{"tensor": x, "data": one}], "eval")
        >>> same_feeds([{"tensor": x, "data": one}], entries), same_feeds({x: one}, entries)
        (True, True)
        >>> same_feeds([{"tensor": x, "data": Scalar.new(1)}], entries), same_feeds([{"tensor": x, "array": one}], entries)
        (False, False)
        >>> y = g.placeholder("y", []); pair = normalize_feeds({x: one, y: one}, "eval")
        >>> same_feeds({x: one, y: one}, pair), same_feeds({y: one, x: one}, pair)  # in order
        (True, False)
    """
    if isinstance(feeds, (list, tuple)):
        if len(feeds) != len(entries):
            return False
        for item, entry in zip(feeds, entries):  # noqa: B905 - (lengths checked above)
            if type(item) is dict:
                try:  # (subscripts, not two dict.get calls: this runs every training step)
                    if len(item) != 2 or item["tensor"] is not entry.tensor or item["data"] is not entry.data:
                        return False
                except KeyError:  # (other keys than "tensor" and "data")
                    return False
            elif item is not entry and (
                type(item) is not FeedEntry or item.tensor is not entry.tensor or item.data is not entry.data
            ):
                return False
        return True
    if isinstance(feeds, dict) and len(feeds) == len(entries):
        # In order, as normalize_feeds takes them (providers draw in the feeds' order); a str
        # key (one {"tensor", "data"} entry) is never an entry's tensor.
        for (tensor, data), entry in zip(feeds.items(), entries):  # noqa: B905 - (lengths checked)
            if tensor is not entry.tensor or data is not entry.data:
                return False
        return True
    return False


def load_feeds(
    entries: list[FeedEntry],
    batched: Mapping[Tensor, bool],
    batch_size: int | None,
    math: NDArrayMath,
    where: str,
    rows: Rows | None = None,
) -> dict[Tensor, NDArray]:
    """Values of the fed tensors: one example each (``batch_size`` None), or a batch drawn
    from every InputProvider whose tensor is ``batched`` (NDArray feeds stay unbatched).

    With ``rows`` given, a batch whose provider keeps its examples on ``math``'s backend is
    not gathered here: ``rows`` gets its examples and row indices, and the caller gathers it
    (``math.gather``) where its recorded step can include the gather."""
    values: dict[Tensor, NDArray] = {}
    for e in entries:
        t, data = e.tensor, e.data
        is_batched = batched[t]
        if is_batched and rows is not None:
            drawn = next_batch_rows(data, math, batch_size)  # type: ignore[arg-type]
            if drawn is not None:
                examples, indices = drawn
                if examples.shape[1:] != t.shape:
                    raise ShapeError(
                        f"{where}: the feed for {t!r} must be a batch of {batch_size} examples of shape "
                        f"{t.shape}; got examples of shape {examples.shape[1:]}."
                    )
                rows[t] = drawn
                continue
        if is_batched:
            value = next_batch(data, math, batch_size)  # type: ignore[arg-type]
        elif isinstance(data, InputProvider):
            copy = data.get_next_copy(math)
            value = alias(copy)  # ours to use in this call; the provider's copy goes back
            data.dispose_copy(math, copy)
        else:
            value = as_feed_array(data, t, where)
        want = ((batch_size,) if is_batched else ()) + t.shape
        if value.shape != want:
            what = (
                f"a batch of {batch_size} examples of shape {t.shape}" if is_batched else f"shape {t.shape}"
            )
            raise ShapeError(f"{where}: the feed for {t!r} must be {what}; got data.shape={value.shape}.")
        values[t] = value
    return values


def alias(x: NDArray) -> NDArray:
    """Another view of ``x``'s data (disposing one view leaves the other alive)."""
    return x._view()


def as_feed_array(data: Any, tensor: Tensor, where: str) -> NDArray:
    """``data`` (an NDArray, or array-like values) as the value fed to ``tensor``."""
    if isinstance(data, NDArray):
        data._check_live(where)
        return alias(data)
    if data is None:
        raise TypeError(f"{where}: the feed for {tensor!r} has no data; got None.")
    try:
        return NDArray.make(
            tensor.shape
            if not hasattr(data, "shape") and not isinstance(data, (list, tuple))
            else _shape_of(data),
            data,
        )
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{where}: a feed's data must be an NDArray, an InputProvider or array-like; "
            f"got {type(data).__name__} for {tensor!r}."
        ) from e


def _shape_of(data: Any) -> tuple[int, ...]:
    from deeplearn import util

    return util.infer_shape(data)


def check_batch_size(batch_size: int, where: str) -> int:
    """``batch_size`` as an int after checking it is a positive integer (NumPy's included), as
    the input providers check their counts."""
    return check_count(batch_size, where, "batch_size")
