"""deeplearn.js's packaged models: SqueezeNet 1.1, MobileNet v1 and the KNN image classifier.

Each has deeplearn.js's interface in snake_case (``load()``, ``predict()``,
``get_top_k_classes()``, ``dispose()``; the classifier's ``add_image()``, ``predict_class()``, ...),
runs on NDArrayMath (either backend), and reads deeplearn.js's own checkpoints, from its checkpoint
zoo by default (downloaded once, cached) or from a folder. ``SqueezeNet.from_torchvision`` takes
torchvision's ``squeezenet1_1`` weights.

Example:
    >>> from deeplearn import models
    >>> models.SqueezeNet.CHECKPOINT_URL
    'https://storage.googleapis.com/learnjs-data/checkpoint_zoo/squeezenet1_1/'
"""

from __future__ import annotations

from deeplearn.models.convert import squeezenet_variables_from_torchvision
from deeplearn.models.imagenet_classes import IMAGENET_CLASSES
from deeplearn.models.knn_image_classifier import ClassPrediction, KNNImageClassifier
from deeplearn.models.mobilenet import MOBILENET_CLASSES, MobileNet
from deeplearn.models.model_util import max_pool_ceil, random_variables, top_k
from deeplearn.models.squeezenet import ACTIVATION_NAMES, PredictionWithActivation, SqueezeNet

__all__ = [
    "ACTIVATION_NAMES",
    "IMAGENET_CLASSES",
    "MOBILENET_CLASSES",
    "ClassPrediction",
    "KNNImageClassifier",
    "MobileNet",
    "PredictionWithActivation",
    "SqueezeNet",
    "max_pool_ceil",
    "random_variables",
    "squeezenet_variables_from_torchvision",
    "top_k",
]
