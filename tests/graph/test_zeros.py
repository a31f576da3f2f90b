"""The zero Scalars a NONE training call returns (``deeplearn/graph/zeros.py``): made a block
at a time, each counted live and tracked by the caller's scope only when handed out, each
independent of the others."""

from __future__ import annotations

import deeplearn as dl
from deeplearn.graph.zeros import ZeroScalars


def test_a_zero_scalar_counts_when_handed_out_and_goes_with_its_scope(math: dl.NDArrayMath) -> None:
    zeros = ZeroScalars(block=4)
    before = math.get_num_arrays()
    with math.scope():
        handed = [zeros.next(math) for _ in range(6)]  # across two blocks
        assert math.get_num_arrays() == before + 6  # the block's others are not counted yet
        assert [z.get() for z in handed] == [0.0] * 6 and all(z.shape == () for z in handed)
    assert all(z.is_disposed for z in handed)
    assert math.get_num_arrays() == before


def test_zero_scalars_are_independent_and_made_in_order(math: dl.NDArrayMath) -> None:
    zeros = ZeroScalars(block=8)
    with math.scope():
        a = zeros.next(math)
        made_between = dl.Scalar.new(1, math=math)
        b, c = zeros.next(math), zeros.next(math)
        a.set(5.0)
        b.dispose()
        assert (a.get(), c.get(), b.is_disposed) == (5.0, 0.0, True)
        # storages are numbered as made: a hand-out counts as made then (a recorder's "new")
        assert a.storage.serial < made_between.storage.serial < b.storage.serial < c.storage.serial
