"""bench/host_probe.py breaks a repeated training call down piece by piece, on the pieces the
Session has now (a renamed one is an error, not a stub that stubs nothing)."""

from __future__ import annotations

from bench.host_probe import breakdown


def test_the_breakdown_names_every_piece_and_adds_up() -> None:
    rows = breakdown("cpu", "quad", steps=200, rounds=1)
    names = [name for name, _ in rows]
    assert names[0] == "the whole call" and names[-1] == "the rest" and len(names) == 10
    whole = rows[0][1]
    assert whole > 0 and abs(sum(us for _, us in rows[1:]) - whole) < 1e-6 * whole
