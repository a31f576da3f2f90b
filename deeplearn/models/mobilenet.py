"""MobileNet v1 (1.0, 224), the ImageNet classifier of deeplearn.js's ``deeplearn-mobilenet`` package.

The network (Howard et al. 2017) as TF-slim trained it and deeplearn.js ran its checkpoint: pixel
values (0-255) scaled to [-1, 1]; a 3x3 stride-2 convolution to 32 channels; 13 blocks of a 3x3
depthwise convolution and a 1x1 ("pointwise") convolution, each followed by batch normalization
(epsilon 0.001) and ReLU6; every convolution 'same' padded and without bias; the average over the
image; a 1x1 convolution with bias to 1,001 classes, the first of which is "background".
"""

from __future__ import annotations

from collections.abc import Sequence

from deeplearn.math.ndarray import NDArray, Scalar
from deeplearn.math.ndarray_math import NDArrayMath
from deeplearn.models import model_util
from deeplearn.models.imagenet_classes import IMAGENET_CLASSES
from deeplearn.models.pretrained import PretrainedClassifier
from deeplearn.types import Shape

__all__ = ["MOBILENET_CLASSES", "MobileNet", "variable_shapes"]

MOBILENET_CLASSES: tuple[str, ...] = ("background", *IMAGENET_CLASSES)
"""The names of MobileNet's 1,001 outputs: "background", then ``IMAGENET_CLASSES``."""

# block -> (output channels of its pointwise convolution, stride of its depthwise convolution)
_BLOCKS: dict[int, tuple[int, int]] = {
    1: (64, 1),
    2: (128, 2),
    3: (128, 1),
    4: (256, 2),
    5: (256, 1),
    6: (512, 2),
    7: (512, 1),
    8: (512, 1),
    9: (512, 1),
    10: (512, 1),
    11: (512, 1),
    12: (1024, 2),
    13: (1024, 1),
}
_EPSILON = 0.001
_BATCH_NORM = ("moving_mean", "moving_variance", "gamma", "beta")


def variable_shapes(num_classes: int = 1001) -> dict[str, Shape]:
    """Every variable of MobileNet v1 1.0 by deeplearn.js's (TF-slim's) name, with its shape.

    Example:
        >>> shapes = variable_shapes()
        >>> len(shapes), shapes["MobilenetV1/Conv2d_1_depthwise/depthwise_weights"]
        (137, (3, 3, 32, 1))
        >>> shapes["MobilenetV1/Logits/Conv2d_1c_1x1/weights"]
        (1, 1, 1024, 1001)
    """
    prefix = "MobilenetV1/Conv2d_"
    shapes: dict[str, Shape] = {f"{prefix}0/weights": (3, 3, 3, 32)}
    shapes.update({f"{prefix}0/BatchNorm/{v}": (32,) for v in _BATCH_NORM})
    channels = 32
    for block, (out_channels, _) in _BLOCKS.items():
        shapes[f"{prefix}{block}_depthwise/depthwise_weights"] = (3, 3, channels, 1)
        shapes.update({f"{prefix}{block}_depthwise/BatchNorm/{v}": (channels,) for v in _BATCH_NORM})
        shapes[f"{prefix}{block}_pointwise/weights"] = (1, 1, channels, out_channels)
        shapes.update({f"{prefix}{block}_pointwise/BatchNorm/{v}": (out_channels,) for v in _BATCH_NORM})
        channels = out_channels
    shapes["MobilenetV1/Logits/Conv2d_1c_1x1/weights"] = (1, 1, channels, num_classes)
    shapes["MobilenetV1/Logits/Conv2d_1c_1x1/biases"] = (num_classes,)
    return shapes


class MobileNet(PretrainedClassifier):
    """MobileNet v1 with deeplearn.js's interface: ``load()``, ``predict()``,
    ``get_top_k_classes()``, ``dispose()``.

    Args:
        math: where it runs (default ``dl.ENV.math``).
        class_names: the name of each output (default ``MOBILENET_CLASSES``: "background" and
            the 1,000 ImageNet classes).

    Example:
        >>> import tempfile
        >>> from deeplearn.models import MobileNet, random_variables
        >>> from deeplearn.models.mobilenet import variable_shapes
        >>> rng = np.random.default_rng(0)
        >>> folder = tempfile.mkdtemp()  # random weights in deeplearn.js's checkpoint format
        >>> dl.write_checkpoint(folder, random_variables(variable_shapes()))
        >>> net = MobileNet(math)
        >>> net.load(folder)  # net.load() reads deeplearn.js's own checkpoint over https
        >>> logits = net.predict(Array3D.new([64, 64, 3], rng.uniform(0, 255, 64 * 64 * 3)))
        >>> logits.shape, len(net.get_top_k_classes(logits, 3))
        ((1001,), 3)
        >>> net.dispose()
    """

    CHECKPOINT_URL = model_util.CHECKPOINT_ZOO + "mobilenet_v1_1.0_224/"
    """deeplearn.js's MobileNet v1 1.0 224 checkpoint, which ``load()`` reads by default."""

    _variable_shapes = staticmethod(variable_shapes)
    _LOGITS_BIAS = "MobilenetV1/Logits/Conv2d_1c_1x1/biases"

    def __init__(
        self, math: NDArrayMath | None = None, *, class_names: Sequence[str] = MOBILENET_CLASSES
    ) -> None:
        super().__init__(math, class_names)

    def predict(self, input: NDArray) -> NDArray:
        """The logits (scores before the softmax) of an image.

        Args:
            input: pixel values 0-255, [height, width, 3] (224x224 is what it was trained
                on; any size works) or a batch [batch, height, width, 3].

        Returns:
            [1001] (or [batch, 1001]); output 0 is "background".
        """
        where = "MobileNet.predict"
        model_util.check_image(input, where)
        variables = self._vars(where)
        logits: NDArray = self.math.scope(lambda: self._forward(variables, input))
        return logits

    def _batch_norm_relu6(self, x: NDArray, variables: dict[str, NDArray], name: str) -> NDArray:
        math = self.math
        mean, variance, scale, offset = (variables[f"{name}/BatchNorm/{v}"] for v in _BATCH_NORM)
        norm = math.batch_normalization3d if x.rank == 3 else math.batch_normalization4d
        return math.clip(norm(x, mean, variance, _EPSILON, scale, offset), 0, 6)  # ReLU6

    def _forward(self, variables: dict[str, NDArray], input: NDArray) -> NDArray:
        math = self.math
        x = math.subtract(
            math.divide(input.as_type("float32"), Scalar.new(255 / 2, math=math)), Scalar.new(1, math=math)
        )
        x = math.conv2d(x, variables["MobilenetV1/Conv2d_0/weights"], None, 2, "same")
        x = self._batch_norm_relu6(x, variables, "MobilenetV1/Conv2d_0")
        for block, (_, stride) in _BLOCKS.items():
            name = f"MobilenetV1/Conv2d_{block}"
            x = math.depthwise_conv2d(x, variables[f"{name}_depthwise/depthwise_weights"], stride, "same")
            x = self._batch_norm_relu6(x, variables, f"{name}_depthwise")
            x = math.conv2d(x, variables[f"{name}_pointwise/weights"], None, 1, "same")
            x = self._batch_norm_relu6(x, variables, f"{name}_pointwise")
        height, width = x.shape[-3:-1]
        x = math.avg_pool(x, (height, width), 1, "valid")
        weights = variables["MobilenetV1/Logits/Conv2d_1c_1x1/weights"]
        x = math.conv2d(x, weights, variables["MobilenetV1/Logits/Conv2d_1c_1x1/biases"], 1, "same")
        classes = weights.shape[3]
        return x.reshape([classes] if x.rank == 3 else [x.shape[0], classes])
