"""Kernels per step: JAX's read from the program XLA compiled (``bench.profiling.xla_kernels``),
and the report's table of them beside deeplearn's (``bench.report``). Speed is never asserted."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from bench import report
from bench.profiling import profile_xla, xla_kernels
from bench.workloads import make_problem

# An optimized module in the shape XLA prints it: a fusion's body, a computation outlined into a
# `call` (as for a command buffer), and an entry whose root is a tuple typed with a comment.
HLO = """HloModule jit_step, entry_computation_layout={(f32[4]{0})->(f32[4]{0}, f32[])}

%fused_computation (param_0: f32[4]) -> f32[4] {
  %param_0 = f32[4]{0} parameter(0)
  %constant.1 = f32[] constant(2)
  %broadcast = f32[4]{0} broadcast(%constant.1), dimensions={}
  ROOT %multiply = f32[4]{0} multiply(%param_0, %broadcast)
}

%region_add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %add = f32[] add(%a, %b)
}

%command_buffer (p0: f32[4], p1: f32[4,4]) -> (f32[4], f32[4,4]) {
  %p0 = f32[4]{0} parameter(0)
  %p1 = f32[4,4]{1,0} parameter(1)
  %gemm = (f32[4,4]{1,0}, s8[0]{0}) custom-call(%p1, %p1), custom_call_target="__cublas$gemm"
  %get-tuple-element = f32[4,4]{1,0} get-tuple-element(%gemm), index=0
  %fusion.2 = f32[4]{0} fusion(%p0), kind=kLoop, calls=%fused_computation
  ROOT %tuple = (f32[4]{0}, f32[4,4]{1,0}) tuple(%fusion.2, %get-tuple-element)
}

ENTRY %main.10 (x: f32[4], w: f32[4,4]) -> (f32[4], /*index=1*/f32[]) {
  %x = f32[4]{0} parameter(0)
  %w = f32[4,4]{1,0} parameter(1)
  %fusion = f32[4]{0} fusion(%x), kind=kLoop, calls=%fused_computation
  %call = (f32[4]{0}, f32[4,4]{1,0}) call(%fusion, %w), to_apply=%command_buffer
  %get-tuple-element.1 = f32[4]{0} get-tuple-element(%call), index=0
  %bitcast = f32[2,2]{1,0} bitcast(%w)
  %constant.3 = f32[] constant(0)
  %reduce = f32[] reduce(%get-tuple-element.1, %constant.3), dimensions={0}, to_apply=%region_add
  %copy = f32[4]{0} copy(%get-tuple-element.1)
  ROOT %tuple.1 = (f32[4]{0}, /*index=1*/f32[]) tuple(%copy, %reduce)
}
"""


def test_xla_kernels_counts_what_the_entry_runs() -> None:
    # The entry's fusion, reduce and copy; the called computation's GEMM and fusion. Nothing for
    # parameters, constants, tuples, bitcasts; nothing inside a fusion or a reduction's body.
    assert xla_kernels(HLO) == {"copy": 1, "custom-call": 1, "fusion": 2, "reduce": 1}


def test_xla_kernels_of_no_entry_is_nothing() -> None:
    assert xla_kernels("HloModule m\n") == {}
    assert xla_kernels(HLO.replace("ENTRY ", "")) == {}


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_profile_xla_reads_jax_compiled_step() -> None:
    from bench.peers.jax_peer import JaxJit

    logged: list[str] = []
    out = profile_xla(JaxJit, make_problem("mlp", "cpu", quick=True), "cpu", log=logged.append)
    # Three layers: at least one kernel per layer's product, forward.
    assert out["system"] == "jax" and out["xla_kernels"] == sum(out["xla_ops"].values()) >= 3
    assert f"{out['xla_kernels']} kernels" in logged[0]


def _doc(commit: str, profiles: list[dict[str, Any]] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "mlp",
        "systems": [
            {"system": "deeplearn-session", "label": "deeplearn Session", "timing": {"us_per_step": 80.0}}
        ],
    }
    if profiles is not None:
        entry["profiles"] = profiles
    return {
        "device": {"name": "GPU"},
        "backend": "cuda",
        "commit": commit,
        "_file": f"{commit}.json",
        "workloads": [entry],
    }


def test_report_tables_the_kernels_of_the_latest_profiled_run() -> None:
    profiled = _doc(
        "aaa",
        [
            {
                "system": "deeplearn-session",
                "captured_graphs": [{"kernels": {"Kernel": 21}, "device_us": 72.0}],
            },
            {"system": "jax", "xla_kernels": 12, "xla_ops": {"custom-call": 3, "fusion": 9}},
        ],
    )
    later = _doc("bbb", None)  # a later run without --profile: the table stays the profiled one's
    lines = report._kernels_per_step([profiled, later], "GPU [cuda]")
    assert "`aaa`" in lines[0]
    assert "| mlp | 21 Kernel | 72.0 | 90% | 12 (3 custom-call, 9 fusion) |" in lines
    assert report._kernels_per_step([later], "GPU [cuda]") == []
    cpu = _doc("ccc", [{"system": "deeplearn-session", "cpu_steps": [{"kernels": 28}]}])
    assert "| mlp | 28 (CPU) |  |  |  |" in report._kernels_per_step([cpu], "GPU [cuda]")
