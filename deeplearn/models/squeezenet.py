"""SqueezeNet 1.1, the ImageNet classifier of deeplearn.js's ``deeplearn-squeezenet`` package.

The network (Iandola et al. 2016, version 1.1): a 3x3 stride-2 convolution to 64 channels, max
pools (3x3, stride 2) after it and after the 3rd and 5th fire modules, eight fire modules (a 1x1
"squeeze" convolution, then 1x1 and 3x3 "expand" convolutions whose ReLUs are concatenated along
the channels), a 1x1 convolution to the classes (``conv10``), and the average over the image.
Every convolution but ``conv10`` is followed by a ReLU.

Two flavours of the same weights' layout:

* ``"deeplearnjs"`` (the default), as deeplearn.js 0.3 ran its checkpoint: the input's pixel
  values (0-255) minus [103.939, 116.779, 123.68] per channel, in the order given (deeplearn.js
  passed RGB pixels; these are the Caffe model's BGR means); pools that drop a last partial
  window (floor); no ReLU after ``conv10``.
* ``"torchvision"``, as torchvision's ``squeezenet1_1`` runs: RGB pixels (0-255) scaled to 0-1 and
  normalised with ImageNet's mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225]; pools
  with ``ceil_mode=True`` (a last partial window is kept); a ReLU after ``conv10``; dropout is
  the identity (evaluation). ``SqueezeNet.from_torchvision(state_dict)`` builds one.

deeplearn.js's first layers used numeric padding 0, which refused inputs whose size does not
divide (224x224); here they are 'valid', which gives the same result where deeplearn.js had one
and takes any size from 31x31 up (deeplearn.js's demo used 227x227).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, get_args

from deeplearn.math.ndarray import Array1D, NDArray
from deeplearn.math.ndarray_math import NDArrayMath
from deeplearn.models import model_util
from deeplearn.models.imagenet_classes import IMAGENET_CLASSES
from deeplearn.models.pretrained import PretrainedClassifier
from deeplearn.types import Shape

__all__ = ["ACTIVATION_NAMES", "ActivationName", "Flavor", "PredictionWithActivation", "SqueezeNet"]

Flavor = Literal["deeplearnjs", "torchvision"]
ActivationName = Literal[
    "conv_1",
    "maxpool_1",
    "fire2",
    "fire3",
    "maxpool_2",
    "fire4",
    "fire5",
    "maxpool_3",
    "fire6",
    "fire7",
    "fire8",
    "fire9",
    "conv10",
]
ACTIVATION_NAMES: tuple[str, ...] = get_args(ActivationName)
"""The layers ``predict_with_activation`` can return, in order (deeplearn.js's names)."""

# fire module -> (input channels, squeeze channels, channels of each expand branch)
_FIRES: dict[int, tuple[int, int, int]] = {
    2: (64, 16, 64),
    3: (128, 16, 64),
    4: (128, 32, 128),
    5: (256, 32, 128),
    6: (256, 48, 192),
    7: (384, 48, 192),
    8: (384, 64, 256),
    9: (512, 64, 256),
}
_DEEPLEARNJS_MEAN = (103.939, 116.779, 123.68)
_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)


def variable_shapes(num_classes: int = 1000) -> dict[str, Shape]:
    """Every variable of SqueezeNet 1.1 by deeplearn.js's name, with its shape (filters are
    [fH, fW, inDepth, outDepth]).

    Example:
        >>> shapes = variable_shapes()
        >>> len(shapes), shapes["conv1_W:0"], shapes["fire9/expand3x3_W:0"], shapes["conv10_b:0"]
        (52, (3, 3, 3, 64), (3, 3, 64, 256), (1000,))
    """
    shapes: dict[str, Shape] = {"conv1_W:0": (3, 3, 3, 64), "conv1_b:0": (64,)}
    for fire, (inputs, squeeze, expand) in _FIRES.items():
        for layer, size, depth_in, depth_out in (
            ("squeeze1x1", 1, inputs, squeeze),
            ("expand1x1", 1, squeeze, expand),
            ("expand3x3", 3, squeeze, expand),
        ):
            shapes[f"fire{fire}/{layer}_W:0"] = (size, size, depth_in, depth_out)
            shapes[f"fire{fire}/{layer}_b:0"] = (depth_out,)
    shapes["conv10_W:0"] = (1, 1, 512, num_classes)
    shapes["conv10_b:0"] = (num_classes,)
    return shapes


class PredictionWithActivation(NamedTuple):
    """What ``predict_with_activation`` returns (deeplearn.js's ``{logits, activation}``)."""

    logits: NDArray
    """[num_classes] (or [batch, num_classes]): the scores before the softmax."""
    activation: NDArray | None
    """The named layer's output [height, width, channels] (or with a batch axis); None when no
    layer was named."""


class SqueezeNet(PretrainedClassifier):
    """SqueezeNet 1.1 with deeplearn.js's interface: ``load()``, ``predict()``,
    ``predict_with_activation()``, ``get_top_k_classes()``, ``dispose()``.

    Args:
        math: where it runs (default ``dl.ENV.math``: CUDA where CuPy sees a GPU, else the CPU).
        flavor: ``"deeplearnjs"`` (deeplearn.js's checkpoint and preprocessing) or
            ``"torchvision"`` (torchvision's ``squeezenet1_1``); see the module's docstring.
        class_names: the name of each output (default ``IMAGENET_CLASSES``).

    Example:
        >>> import tempfile
        >>> from deeplearn.models import SqueezeNet, random_variables
        >>> from deeplearn.models.squeezenet import variable_shapes
        >>> rng = np.random.default_rng(0)
        >>> folder = tempfile.mkdtemp()  # random weights in deeplearn.js's checkpoint format
        >>> dl.write_checkpoint(folder, random_variables(variable_shapes()))
        >>> net = SqueezeNet(math)
        >>> net.load(folder)  # net.load() reads deeplearn.js's own checkpoint over https
        >>> image = Array3D.new([227, 227, 3], rng.uniform(0, 255, 227 * 227 * 3))
        >>> logits = net.predict(image)
        >>> logits.shape
        (1000,)
        >>> top = net.get_top_k_classes(logits, 5)  # {class name: probability}, most probable first
        >>> len(top), all(0 <= p <= 1 for p in top.values()), set(top) <= set(dl.models.IMAGENET_CLASSES)
        (5, True, True)
        >>> net.dispose()
    """

    CHECKPOINT_URL = model_util.CHECKPOINT_ZOO + "squeezenet1_1/"
    """deeplearn.js's SqueezeNet 1.1 checkpoint, which ``load()`` reads by default."""
    _variable_shapes = staticmethod(variable_shapes)
    _LOGITS_BIAS = "conv10_b:0"

    def __init__(
        self,
        math: NDArrayMath | None = None,
        *,
        flavor: Flavor = "deeplearnjs",
        class_names: Sequence[str] = IMAGENET_CLASSES,
    ) -> None:
        if flavor not in get_args(Flavor):
            raise ValueError(
                f"SqueezeNet: flavor must be 'deeplearnjs' or 'torchvision'; got flavor = {flavor!r}."
            )
        super().__init__(math, class_names)
        self.flavor: Flavor = flavor

    @classmethod
    def from_torchvision(cls, state_dict: Mapping[str, Any], math: NDArrayMath | None = None) -> SqueezeNet:
        """A ``"torchvision"``-flavoured SqueezeNet with the weights of torchvision's
        ``squeezenet1_1().state_dict()`` (torch tensors or NumPy arrays; torch is not needed
        here). See ``deeplearn.models.convert.squeezenet_variables_from_torchvision``."""
        from deeplearn.models.convert import squeezenet_variables_from_torchvision

        net = cls(math, flavor="torchvision")
        net.set_variables(squeezenet_variables_from_torchvision(state_dict))
        return net

    @property
    def num_classes(self) -> int:
        return self._vars("SqueezeNet.num_classes")["conv10_b:0"].shape[0]

    # -- inference -------------------------------------------------------------------------------
    def predict(self, input: NDArray) -> NDArray:
        """The logits (scores before the softmax) of an image.

        Args:
            input: pixel values 0-255, [height, width, 3] (at least 31x31; deeplearn.js used
                227x227) or a batch [batch, height, width, 3]; int32 or float32.

        Returns:
            [num_classes], or [batch, num_classes] for a batch.
        """
        return self.predict_with_activation(input).logits

    def predict_with_activation(
        self, input: NDArray, activation_name: ActivationName | None = None
    ) -> PredictionWithActivation:
        """The logits and, where ``activation_name`` names a layer (``ACTIVATION_NAMES``), that
        layer's output, as deeplearn.js's ``predictWithActivation``. Intermediate arrays are
        disposed; the two results survive into the caller's scope."""
        where = "SqueezeNet.predict_with_activation"
        model_util.check_image(input, where)
        if activation_name is not None and activation_name not in ACTIVATION_NAMES:
            raise ValueError(
                f"{where}: activation_name must be one of {list(ACTIVATION_NAMES)} or None; "
                f"got activation_name = {activation_name!r}."
            )
        variables = self._vars(where)
        result: PredictionWithActivation = self.math.scope(
            lambda: self._forward(variables, input, activation_name)
        )
        return result

    def _preprocess(self, x: NDArray) -> NDArray:
        math = self.math
        x = x.as_type("float32")
        if self.flavor == "deeplearnjs":
            return math.subtract(x, Array1D.new(_DEEPLEARNJS_MEAN, math=math))
        mean = Array1D.new([255 * m for m in _TORCHVISION_MEAN], math=math)
        std = Array1D.new([255 * s for s in _TORCHVISION_STD], math=math)
        return math.divide(math.subtract(x, mean), std)

    def _pool(self, x: NDArray) -> NDArray:
        if self.flavor == "torchvision":
            return model_util.max_pool_ceil(self.math, x, 3, 2)
        return self.math.max_pool(x, 3, 2, "valid")

    def _conv_relu(
        self, x: NDArray, variables: dict[str, NDArray], name: str, stride: int, pad: Any
    ) -> NDArray:
        return self.math.relu(
            self.math.conv2d(x, variables[f"{name}_W:0"], variables[f"{name}_b:0"], stride, pad)
        )

    def _fire(self, x: NDArray, variables: dict[str, NDArray], fire: int) -> NDArray:
        squeezed = self._conv_relu(x, variables, f"fire{fire}/squeeze1x1", 1, "valid")
        left = self._conv_relu(squeezed, variables, f"fire{fire}/expand1x1", 1, "valid")
        right = self._conv_relu(squeezed, variables, f"fire{fire}/expand3x3", 1, 1)
        return self.math.concat(left, right, -1)

    def _forward(
        self, variables: dict[str, NDArray], input: NDArray, activation_name: str | None
    ) -> PredictionWithActivation:
        math = self.math
        layers: dict[str, NDArray] = {}
        # deeplearn.js: numeric pad 0 in conv1 and the first pool, which refused sizes that do not
        # divide (224x224); 'valid' gives the same values wherever that worked.
        x = layers["conv_1"] = self._conv_relu(self._preprocess(input), variables, "conv1", 2, "valid")
        x = layers["maxpool_1"] = self._pool(x)
        for fire in (2, 3):
            x = layers[f"fire{fire}"] = self._fire(x, variables, fire)
        x = layers["maxpool_2"] = self._pool(x)
        for fire in (4, 5):
            x = layers[f"fire{fire}"] = self._fire(x, variables, fire)
        x = layers["maxpool_3"] = self._pool(x)
        for fire in (6, 7, 8, 9):
            x = layers[f"fire{fire}"] = self._fire(x, variables, fire)
        # torchvision's classifier is Dropout (the identity in evaluation), conv10, ReLU, the
        # average; deeplearn.js's had no ReLU.
        x = math.conv2d(x, variables["conv10_W:0"], variables["conv10_b:0"], 1, "valid")
        if self.flavor == "torchvision":
            x = math.relu(x)
        layers["conv10"] = x
        height, width, classes = x.shape[-3:]
        pooled = math.avg_pool(x, (height, width), 1, "valid")
        logits = pooled.reshape([classes] if x.rank == 3 else [x.shape[0], classes])
        return PredictionWithActivation(logits, None if activation_name is None else layers[activation_name])
