"""Padding and output-size arithmetic of convolutions and pooling (deeplearn.js conv_util)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deeplearn.math.ops.conv_util import (
    Conv2DInfo,
    PadInfo,
    as_pair,
    compute_conv2d_info,
    compute_default_pad,
    compute_output_shape3d,
    compute_pool2d_info,
    compute_weights_shape4d,
    get_pad_and_out_info,
    normalize_pad,
)
from deeplearn.types import ShapeError

CASES = json.loads((Path(__file__).parents[1] / "data" / "conformance_cases.json").read_text())
CONV_INFO_CASES = [c for c in CASES if c["op"] == "computeConv2DInfo"]


@pytest.mark.parametrize("case", CONV_INFO_CASES, ids=[c["id"] for c in CONV_INFO_CASES])
def test_compute_conv2d_info_conformance(case: dict) -> None:
    attrs = case["attrs"]
    info = compute_conv2d_info(
        tuple(case["inputs"][0]["inShape"]),
        tuple(case["inputs"][1]["filterShape"]),
        attrs["strides"],
        attrs["pad"],
        attrs["depthwise"],
        attrs["dataFormat"],
    )
    expected = case["expected"]
    assert info.out_height == expected["outHeight"]
    assert info.out_width == expected["outWidth"]
    assert info.out_channels == expected["outChannels"]
    if "batchSize" in expected:
        assert info.batch_size == expected["batchSize"]
    if "outShape" in expected:
        assert info.out_shape == tuple(expected["outShape"])
    if "padInfo" in expected:
        assert dataclasses.asdict(info.pad) == expected["padInfo"]


def test_conformance_fixtures_are_present() -> None:
    assert len(CONV_INFO_CASES) == 6


@pytest.mark.parametrize(
    ("in_size", "f", "s", "out", "before", "after"),
    [
        (3, 2, 1, 3, 0, 1),  # reference §14.4: 2×2 filter on 3×3 'same' → top 0, bottom 1
        (5, 3, 1, 5, 1, 1),
        (5, 3, 2, 3, 1, 1),
        (4, 3, 2, 2, 0, 1),  # total (2-1)·2 + 3 - 4 = 1: the extra pixel goes bottom/right
        (4, 1, 2, 2, 0, 0),  # (2-1)·2 + 1 - 4 = -1: no negative padding
        (6, 4, 3, 2, 0, 1),
        (1, 1, 1, 1, 0, 0),
    ],
)
def test_same_padding(in_size: int, f: int, s: int, out: int, before: int, after: int) -> None:
    pad, out_h, out_w = get_pad_and_out_info("same", in_size, in_size, s, s, f, f)
    assert (out_h, out_w) == (out, out)
    assert pad == PadInfo(top=before, left=before, bottom=after, right=after)


def test_same_padding_non_square() -> None:
    info = compute_conv2d_info((2, 4, 7, 3), (3, 2, 3, 5), (2, 3), "same")
    # height: out 2, total (2-1)·2 + 3 - 4 = 1 → 0/1; width: out 3, total (3-1)·3 + 2 - 7 = 1 → 0/1
    assert info.out_shape == (2, 2, 3, 5)
    assert info.pad == PadInfo(top=0, left=0, bottom=1, right=1)
    assert (info.stride_height, info.stride_width, info.filter_height, info.filter_width) == (2, 3, 3, 2)


@pytest.mark.parametrize(
    ("in_size", "f", "s", "out"), [(3, 2, 2, 1), (5, 3, 1, 3), (5, 3, 2, 2), (6, 3, 2, 2), (4, 4, 1, 1)]
)
def test_valid_padding(in_size: int, f: int, s: int, out: int) -> None:
    pad, out_h, out_w = get_pad_and_out_info("valid", in_size, in_size, s, s, f, f)
    assert (out_h, out_w) == (out, out) == (math.ceil((in_size - f + 1) / s),) * 2
    assert pad == PadInfo(0, 0, 0, 0)


def test_numeric_pad() -> None:
    info = compute_conv2d_info((1, 5, 5, 3), (3, 3, 3, 2), 2, 1)
    assert info.out_shape == (1, 3, 3, 2)
    assert info.pad == PadInfo(1, 1, 1, 1)
    assert compute_conv2d_info((1, 30, 30, 3), (7, 7, 3, 10), 1, 1).out_shape == (1, 26, 26, 10)


def test_numeric_pad_uses_each_dimension() -> None:
    # deeplearn.js computed the width from the filter height; we use the filter width (departure).
    info = compute_conv2d_info((1, 5, 6, 1), (3, 2, 1, 1), 1, 1)
    assert (info.out_height, info.out_width) == (5, 7)


def test_numeric_pad_must_give_an_integer_output() -> None:
    with pytest.raises(
        ShapeError,
        match=r"conv2d: the output height \(in - f \+ 2\*pad\)/stride \+ 1 = 2.5 "
        r"must be an integer; change stride or pad\.",
    ):
        compute_conv2d_info((1, 5, 5, 1), (2, 2, 1, 1), 2, 0)
    with pytest.raises(ShapeError, match="output width .* = 2.5 must be an integer"):
        compute_conv2d_info((1, 5, 6, 1), (2, 3, 1, 1), (1, 2), 0)
    with pytest.raises(ShapeError, match="max_pool: the output height"):
        compute_pool2d_info((1, 4, 4, 1), 3, 2, 0, where="max_pool")


def test_filter_larger_than_input_raises() -> None:
    with pytest.raises(ShapeError, match="the filter must fit"):
        compute_conv2d_info((1, 2, 2, 1), (3, 3, 1, 1), 1, "valid")


def test_pad_pair_pads_each_dimension() -> None:
    pad, out_h, out_w = get_pad_and_out_info((0, 2), 1, 5, 1, 1, 1, 3)
    assert pad == PadInfo(top=0, left=2, bottom=0, right=2)
    assert (out_h, out_w) == (1, 7)


def test_pool_info_keeps_depth() -> None:
    info = compute_pool2d_info((2, 5, 5, 3), (2, 3), 1, "valid")
    assert info.out_shape == (2, 4, 3, 3)
    assert (info.filter_height, info.filter_width) == (2, 3)


def test_channels_first() -> None:
    info = compute_conv2d_info((1, 6, 3, 3), (2, 2, 6, 16), 1, "valid", data_format="channelsFirst")
    assert info.out_shape == (1, 16, 2, 2)
    assert info.in_shape == (1, 6, 3, 3)
    assert (info.in_height, info.in_width, info.in_channels) == (3, 3, 6)


@pytest.mark.parametrize(
    ("in_size", "f", "s", "pad"), [(5, 3, 1, 1), (5, 5, 1, 2), (5, 3, 2, 3), (28, 5, 1, 2), (4, 2, 2, 2)]
)
def test_compute_default_pad(in_size: int, f: int, s: int, pad: int) -> None:
    assert compute_default_pad((in_size, in_size, 3), f, s) == pad == (in_size * (s - 1) - s + f) // 2


def test_default_pad_keeps_size_for_odd_filters_and_stride_1() -> None:
    for f in (1, 3, 5, 7):
        assert compute_output_shape3d((9, 9, 3), f, 4, 1) == (9, 9, 4)


def test_compute_output_shape3d() -> None:
    assert compute_output_shape3d((5, 4, 3), 4, 10, 1, 1) == (4, 3, 10)  # graph.shape.conv2d_ok
    assert compute_output_shape3d((5, 5, 3), 3, 2, 2, 1) == (3, 3, 2)
    with pytest.raises(ShapeError, match="must be an integer"):
        compute_output_shape3d((5, 5, 3), 2, 2, 2, 0)


def test_compute_weights_shape4d() -> None:
    assert compute_weights_shape4d(3, 16, 5) == (5, 5, 3, 16)
    assert compute_weights_shape4d(3, 16, 5, 2) == (5, 2, 3, 16)


def test_argument_checks() -> None:
    assert as_pair(3, "strides", "conv2d") == (3, 3)
    assert as_pair([2, 1], "strides", "conv2d") == (2, 1)
    for bad in (0, -1, (1, 2, 3), "2", True, (0, 1)):
        with pytest.raises(ValueError, match="conv2d: strides must be"):
            as_pair(bad, "strides", "conv2d")  # type: ignore[arg-type]
    assert normalize_pad("same", "conv2d") == "same"
    assert normalize_pad(2, "conv2d") == 2
    for bad in ("SAME", -1, 1.5, None, (1, -1)):
        with pytest.raises(ValueError, match="conv2d: pad must be 'same', 'valid' or a non-negative int"):
            normalize_pad(bad, "conv2d")
    with pytest.raises(ValueError, match="data_format"):
        compute_conv2d_info((1, 3, 3, 1), (1, 1, 1, 1), 1, "same", data_format="NCDHW")


def test_info_is_frozen_and_hashable() -> None:
    info = compute_conv2d_info((1, 3, 3, 1), (2, 2, 1, 1), 1, "same")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.out_height = 4  # type: ignore[misc]
    assert hash(info) == hash(compute_conv2d_info((1, 3, 3, 1), (2, 2, 1, 1), 1, "same"))
    assert isinstance(info, Conv2DInfo)
    assert (info.pad_top, info.pad_left, info.pad_bottom, info.pad_right) == (0, 0, 1, 1)
    assert info.padded_shape == (1, 4, 4, 1)


@given(in_size=st.integers(1, 40), f=st.integers(1, 9), s=st.integers(1, 5))
def test_same_padding_properties(in_size: int, f: int, s: int) -> None:
    pad, out, _ = get_pad_and_out_info("same", in_size, in_size, s, s, f, f)
    assert out == -(-in_size // s)
    assert pad.top <= pad.bottom <= pad.top + 1
    # The last window ends exactly at the padded edge, or inside it when no padding is needed.
    assert (out - 1) * s + f <= in_size + pad.top + pad.bottom
    assert pad.top + pad.bottom == max(0, (out - 1) * s + f - in_size)


@given(in_size=st.integers(1, 40), f=st.integers(1, 9), s=st.integers(1, 5))
def test_valid_padding_properties(in_size: int, f: int, s: int) -> None:
    if f > in_size:
        with pytest.raises(ShapeError):
            get_pad_and_out_info("valid", in_size, in_size, s, s, f, f)
        return
    _, out, _ = get_pad_and_out_info("valid", in_size, in_size, s, s, f, f)
    assert (out - 1) * s + f <= in_size < out * s + f  # every window fits; one more would not
