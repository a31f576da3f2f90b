"""deeplearn's SqueezeNet against torchvision's squeezenet1_1, with the same weights.

torchvision's model is built with its own random initialisation (``--seed``), or with the weights
of a saved ``state_dict`` (``--state-dict FILE``, e.g. the pretrained ones saved elsewhere), in
evaluation mode; deeplearn's gets them through ``SqueezeNet.from_torchvision`` (the converter).
Both classify the same random images (pixels 0-255; torchvision's input normalised as its
transforms do) at 224x224 and 227x227 (where the ceil-mode pools keep a partial window), on each
deeplearn backend there is (the CPU, and CUDA where CuPy sees a GPU).

It prints, per backend and size, the largest relative logit difference (max |deeplearn - torch|
/ max |torch|, per image) and whether the top-5 classes agree, then the overall figures, and exits
with 1 if the difference is above 1e-4 or a top-5 differs (the bar of issue 15).

    python bench/compare_squeezenet.py                       # torch on the CPU, float32
    python bench/compare_squeezenet.py --torch-device cuda   # torch on the GPU, TF32 off
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__" or str(ROOT) not in sys.path:
    if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
        sys.path.pop(0)
    sys.path.insert(0, str(ROOT))

import deeplearn as dl  # noqa: E402
from deeplearn.math.backends import cuda_available  # noqa: E402
from deeplearn.models import SqueezeNet  # noqa: E402

BAR = 1e-4
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _torch_model(torch: Any, torchvision: Any, seed: int, state_dict: str | None, device: str) -> Any:
    torch.manual_seed(seed)
    try:
        model = torchvision.models.squeezenet1_1(weights=None)
    except TypeError:  # torchvision before 0.13
        model = torchvision.models.squeezenet1_1(pretrained=False)
    if state_dict is not None:
        model.load_state_dict(torch.load(state_dict, map_location="cpu"))
    return model.eval().to(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="torch's seed for the weights; NumPy's for the images")
    parser.add_argument("--state-dict", help="a torch.save'd squeezenet1_1 state_dict to use instead")
    parser.add_argument("--sizes", default="224,227", help="image sizes (default 224,227)")
    parser.add_argument("--batch", type=int, default=4, help="images per size (default 4)")
    parser.add_argument("--torch-device", default="cpu", help="where torch runs: cpu (default) or cuda")
    args = parser.parse_args(argv)
    try:
        import torch
        import torchvision
    except ImportError as e:
        print(f"compare_squeezenet: torch and torchvision are needed ({e}).", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 products, as deeplearn's
    torch.backends.cudnn.allow_tf32 = False
    model = _torch_model(torch, torchvision, args.seed, args.state_dict, args.torch_device)
    state = model.state_dict()
    backends = ["cpu"] + (["cuda"] if cuda_available() else [])
    print(f"torch {torch.__version__} ({args.torch_device}), torchvision {torchvision.__version__}, "
          f"deeplearn {dl.__version__} backends {backends}")
    rng = np.random.default_rng(args.seed)
    worst, all_agree = 0.0, True
    for size in (int(s) for s in args.sizes.split(",")):
        pixels = rng.uniform(0, 255, (args.batch, size, size, 3)).astype(np.float32)
        normalised = ((pixels / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(normalised).to(args.torch_device)).cpu().numpy().astype(np.float64)
        for backend in backends:
            math = dl.NDArrayMath(backend)
            net = SqueezeNet.from_torchvision(state, math)
            start = time.perf_counter()
            with math.scope():
                got = net.predict(dl.NDArray.from_numpy(pixels, math=math)).get_values().reshape(expected.shape)
            seconds = time.perf_counter() - start
            net.dispose()
            relative = [float(np.abs(got[i] - expected[i]).max() / np.abs(expected[i]).max()) for i in range(args.batch)]
            agree = all(
                list(np.argsort(-got[i], kind="stable")[:5]) == list(np.argsort(-expected[i], kind="stable")[:5])
                for i in range(args.batch)
            )
            worst, all_agree = max(worst, *relative), all_agree and agree
            print(f"{backend:>4} {size}x{size} x{args.batch}: max relative logit difference {max(relative):.3e}, "
                  f"top-5 agree: {agree} ({seconds * 1e3:.0f} ms, first call included)")
    ok = worst <= BAR and all_agree
    print(f"max relative logit difference: {worst:.3e} (bar {BAR:g}); top-5 agree: {all_agree}; "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
