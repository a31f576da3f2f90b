"""A backend's kernels by op class, looked up once (deeplearn/math/backends/dispatch.py): a
kernel registered after a lookup, in any of singledispatch's forms, is the one used next."""

from __future__ import annotations

import functools
from typing import Any

from deeplearn.math.backends.dispatch import KernelTable


class _A:
    pass


class _B:
    pass


def _table() -> tuple[Any, KernelTable]:
    @functools.singledispatch
    def kernel(op: Any, *arrays: Any) -> str:
        return "generic"

    return kernel, KernelTable(kernel)


def _run(table: KernelTable, cls: type) -> str:
    return (table.get(cls) or table.learn(cls))(cls())  # type: ignore[no-any-return]


def test_each_form_of_register_takes_effect_after_a_lookup() -> None:
    kernel, table = _table()
    assert _run(table, _A) == _run(table, _B) == "generic"  # both looked up and remembered

    kernel.register(_A, lambda op: "A, given")
    assert _run(table, _A) == "A, given"

    @kernel.register(_A)
    def _a_decorated(op: _A) -> str:
        return "A, decorated"

    assert _run(table, _A) == "A, decorated"

    @kernel.register
    def _a_annotated(op: _A) -> str:
        return "A, annotated"

    assert _run(table, _A) == "A, annotated"

    @kernel.register(_A | _B)
    def _a_or_b(op: Any) -> str:
        return "A or B"

    assert _run(table, _A) == _run(table, _B) == "A or B"
