"""Weights from other libraries, renamed and laid out for deeplearn's models.

PyTorch is not imported: a state_dict's tensors are read through their ``detach().cpu().numpy()``
(or ``numpy.asarray`` for anything else), so this module works with or without torch installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["TORCHVISION_SQUEEZENET_FIRES", "squeezenet_variables_from_torchvision"]

TORCHVISION_SQUEEZENET_FIRES: dict[int, int] = {3: 2, 4: 3, 6: 4, 7: 5, 9: 6, 10: 7, 11: 8, 12: 9}
"""Index in torchvision's ``squeezenet1_1().features`` -> the number of the fire module it holds
(``features.3`` is ``fire2``; indices 0, 2, 5 and 8 are the first convolution and the pools)."""


def _host(value: Any) -> np.ndarray:
    """A tensor's values as a float32 NumPy array, without importing torch."""
    if hasattr(value, "detach"):  # a torch.Tensor (possibly on a GPU, possibly requiring grad)
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def _torchvision_names() -> dict[str, tuple[str, bool]]:
    """torchvision's state_dict key -> (deeplearn.js's variable name, whether it is a filter)."""
    names: dict[str, tuple[str, bool]] = {
        "features.0.weight": ("conv1_W:0", True),
        "features.0.bias": ("conv1_b:0", False),
        "classifier.1.weight": ("conv10_W:0", True),
        "classifier.1.bias": ("conv10_b:0", False),
    }
    for index, fire in TORCHVISION_SQUEEZENET_FIRES.items():
        for layer in ("squeeze", "expand1x1", "expand3x3"):
            ours = "squeeze1x1" if layer == "squeeze" else layer
            names[f"features.{index}.{layer}.weight"] = (f"fire{fire}/{ours}_W:0", True)
            names[f"features.{index}.{layer}.bias"] = (f"fire{fire}/{ours}_b:0", False)
    return names


def squeezenet_variables_from_torchvision(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """deeplearn.js's SqueezeNet 1.1 variables from torchvision's ``squeezenet1_1().state_dict()``.

    Keys are renamed (``features.3.squeeze.weight`` -> ``fire2/squeeze1x1_W:0``,
    ``classifier.1.weight`` -> ``conv10_W:0``; see ``TORCHVISION_SQUEEZENET_FIRES``) and filters go
    from PyTorch's [outDepth, inDepth, fH, fW] to deeplearn's [fH, fW, inDepth, outDepth].
    Biases are unchanged. Values may be torch tensors (on any device) or array-likes; the
    result is float32 NumPy, ready for ``SqueezeNet.set_variables`` (or ``write_checkpoint``).
    A ``"module."`` prefix (from ``nn.DataParallel``) is removed.

    Raises:
        ValueError: a key is missing or unknown, or a filter is not rank 4 (all are listed).

    Example:
        >>> from deeplearn.models.squeezenet import variable_shapes
        >>> rng = np.random.default_rng(0)
        >>> torch_like = {}  # what torchvision's state_dict holds, as NumPy arrays
        >>> for key, (name, is_filter) in _torchvision_names().items():
        ...     shape = variable_shapes()[name]
        ...     torch_like[key] = rng.normal(size=(shape[3], shape[2], shape[0], shape[1]) if is_filter else shape)
        >>> ours = squeezenet_variables_from_torchvision(torch_like)
        >>> ours["fire2/expand3x3_W:0"].shape, torch_like["features.3.expand3x3.weight"].shape
        ((3, 3, 16, 64), (64, 16, 3, 3))
        >>> bool(ours["conv1_W:0"][2, 1, 0, 5] == np.float32(torch_like["features.0.weight"][5, 0, 2, 1]))
        True
    """
    where = "squeezenet_variables_from_torchvision"
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"{where}: state_dict must be a mapping of name to tensor; got {type(state_dict).__name__}."
        )
    given = {key.removeprefix("module."): value for key, value in state_dict.items()}
    names = _torchvision_names()
    missing = sorted(key for key in names if key not in given)
    unknown = sorted(key for key in given if key not in names)
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unknown:
        problems.append(f"unknown keys {unknown}")
    out: dict[str, np.ndarray] = {}
    for key, (name, is_filter) in names.items():
        if key not in given:
            continue
        value = _host(given[key])
        if is_filter:
            if value.ndim != 4:
                problems.append(f"{key!r} must be a rank-4 filter [out, in, fH, fW], got shape {value.shape}")
                continue
            value = np.ascontiguousarray(value.transpose(2, 3, 1, 0))
        out[name] = value
    if problems:
        raise ValueError(
            f"{where}: the state_dict is not torchvision's squeezenet1_1; got {'; '.join(problems)}."
        )
    return out
