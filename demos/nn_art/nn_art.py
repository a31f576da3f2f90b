"""Random CPPN art, as deeplearn.js's nn-art demo: a small random network, evaluated for every pixel.

A CPPN (compositional pattern-producing network) maps the coordinates of a pixel, x, y and its
distance r from the centre, together with a latent vector z, to a colour. Its weights are random
(a truncated normal with standard deviation 0.6, as in the original); nothing is trained. All the
pixels go through the network at once, as one [pixels, 5] matrix, so a frame is a handful of matrix
products and element-wise ops on ``dl.ENV.math``: the GPU when there is one, else the CPU. Moving z
over time morphs the picture; that is the animation of the live page.

Run it with ``python demos/nn_art/nn_art.py --seed 3 --out art.png`` (writes one frame as a PNG
and prints how long a frame takes), or live in the browser with ``./scripts/watch-demo demos/nn_art``.

Example:
    >>> cppn = CPPN(size=8, width=10, depth=2, activation="tanh", color_mode="rgb", seed=1)
    >>> image = cppn.render(latent_at(0.0))
    >>> image.shape, image.dtype.name, int(image[..., 3].min())     # RGBA bytes, opaque
    ((8, 8, 4), 'uint8', 255)
    >>> bool((image == cppn.render(latent_at(0.0))).all())          # the same z gives the same picture
    True
    >>> cppn.dispose()
"""

from __future__ import annotations

import argparse
import math as pymath
import struct
import time
import zlib
from collections.abc import Callable

import numpy as np

import deeplearn as dl
from deeplearn import Array1D, Array2D, NDArray, NDArrayMath, Scalar

__all__ = ["ACTIVATIONS", "COLOR_MODES", "CPPN", "WEIGHTS_STDEV", "latent_at", "main", "pixel_coordinates",
           "png_bytes"]

# The original's choices: its four activations (sigmoid added: it is the output layer's), its seven
# colour modes and how many of the network's outputs each one reads.
ACTIVATIONS: dict[str, Callable[[NDArrayMath, NDArray], NDArray]] = {
    "tanh": lambda math, x: math.tanh(x),
    "sin": lambda math, x: math.sin(x),
    "relu": lambda math, x: math.relu(x),
    "step": lambda math, x: math.step(x),
    "sigmoid": lambda math, x: math.sigmoid(x),
}
COLOR_MODES: dict[str, int] = {"rgb": 3, "rgba": 4, "hsv": 3, "hsva": 4, "yuv": 3, "yuva": 4, "bw": 1}
MAX_OUTPUTS = 4          # the output layer is drawn 4 wide, so switching RGB to RGBA keeps the colours
NUM_LATENT = 2           # z1, z2
OUTPUT_LAYER = 1000      # the output layer's place when drawing its weights (after any hidden layer)
WEIGHTS_STDEV = 0.6      # the original's standard deviation of the random weights
# YUV to RGB (the original's yuv2rgb, row by row): [y, u, v] @ YUV_TO_RGB = [r, g, b].
YUV_TO_RGB = [[1.0, 1.0, 1.0], [0.0, -0.34413, 1.772], [1.402, -0.71414, 0.0]]


def pixel_coordinates(size: int) -> np.ndarray:
    """The network's input for every pixel of a size×size image, row by row from the top left:
    x and y from -0.5 to 0.5 and r, the distance from the centre (the original's input atlas).

    Example:
        >>> pixel_coordinates(2).tolist()
        [[-0.5, -0.5, 0.7071067690849304], [0.0, -0.5, 0.5], [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]
    """
    x = (np.arange(size, dtype=np.float64) - size * 0.5) / size
    xs, ys = np.meshgrid(x, x)  # xs varies along a row, ys down the columns
    return np.stack([xs, ys, np.hypot(xs, ys)], axis=-1).reshape(size * size, 3).astype(np.float32)


def latent_at(t: float) -> tuple[float, float]:
    """Where the latent vector is after ``t`` seconds of animation: z1 = sin, z2 = cos, at two
    different speeds (as the original's z1 and z2 counters), so z wanders over [-1, 1]² and the
    pictures never quite repeat.

    Example:
        >>> latent_at(0.0)
        (0.0, 1.0)
    """
    return (pymath.sin(t * 2 * pymath.pi / 9.0), pymath.cos(t * 2 * pymath.pi / 5.7))


class CPPN:
    """A random CPPN for size×size images on ``math`` (default ``dl.ENV.math``).

    ``depth`` hidden layers of ``width`` neurons with ``activation`` (0 hidden layers: the
    coordinates go straight to the output layer), then an output layer with a sigmoid, whose 1, 3
    or 4 outputs ``color_mode`` turns into a colour. No biases, as in the original. The same
    ``seed`` gives the same weights on every backend; a layer's weights depend only on the seed,
    its place and its shape, so adding a layer or switching colour mode keeps the rest.

    The arrays it keeps (weights, pixel coordinates, constants) live until :meth:`dispose`.
    """

    def __init__(self, size: int, width: int, depth: int, activation: str, color_mode: str, seed: int,
                 math: NDArrayMath | None = None) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"CPPN: activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}.")
        if color_mode not in COLOR_MODES:
            raise ValueError(f"CPPN: color_mode must be one of {', '.join(COLOR_MODES)}; got {color_mode!r}.")
        self.math = math or dl.ENV.math
        self.size, self.width, self.depth, self.seed = size, width, depth, seed
        self.activation, self.color_mode = activation, color_mode
        m = self.math

        def weights(layer: int, rows: int, cols: int) -> NDArray:
            layer_seed = int(np.random.SeedSequence([seed, layer, rows, cols]).generate_state(1)[0])
            return Array2D.rand_truncated_normal([rows, cols], 0.0, WEIGHTS_STDEV, seed=layer_seed, math=m)

        outputs = COLOR_MODES[color_mode]
        # The first layer takes [x, y, r, z1, z2]; its rows are split in two (see network()).
        first_out = width if depth > 0 else outputs
        first = weights(0, 3 + NUM_LATENT, width if depth > 0 else MAX_OUTPUTS)
        self.w_xyr = m.slice2d(first, [0, 0], [3, first_out])
        self.w_z = m.slice2d(first, [3, 0], [NUM_LATENT, first_out])
        first.dispose()
        self.hidden = [weights(i, width, width) for i in range(1, depth)]
        self.w_out: NDArray | None = None
        if depth > 0:
            last = weights(OUTPUT_LAYER, width, MAX_OUTPUTS)
            self.w_out = m.slice2d(last, [0, 0], [width, outputs])  # only the outputs the colour mode reads
            last.dispose()
        self.coords = Array2D.new([size * size, 3], pixel_coordinates(size), math=m)
        self.hsv_offsets = Array1D.new([0.0, 2.0 / 3.0, 1.0 / 3.0], math=m)
        self.yuv_to_rgb = Array2D.new([3, 3], YUV_TO_RGB, math=m)
        self.uv_offsets = Array1D.new([0.5, 0.5], math=m)
        self.one, self.three, self.six = (Scalar.new(v, math=m) for v in (1.0, 3.0, 6.0))
        self.to_bytes = Scalar.new(255.0, math=m)

    @property
    def num_weights(self) -> int:
        """How many numbers the network multiplies by (its weights)."""
        return sum(a.size for a in self.weight_arrays())

    def weight_arrays(self) -> list[NDArray]:
        """The weight matrices, from the first layer's (its x, y, r part, then its z part) to the output's."""
        return [self.w_xyr, self.w_z, *self.hidden, *([self.w_out] if self.w_out is not None else [])]

    def layer_shapes(self) -> list[list[int]]:
        """[inputs, outputs] of each layer, from the pixel's 5 inputs to the colour's outputs."""
        outputs = COLOR_MODES[self.color_mode]
        if self.depth == 0:
            return [[3 + NUM_LATENT, outputs]]
        return ([[3 + NUM_LATENT, self.width]] + [[self.width, self.width]] * (self.depth - 1)
                + [[self.width, outputs]])

    def network(self, z: tuple[float, float]) -> NDArray:
        """The network's outputs for every pixel, [size², outputs], each in (0, 1)."""
        m = self.math
        # [x, y, r, z1, z2] @ W is [x, y, r] @ W_xyr + z @ W_z: the latent part is the same row for
        # every pixel, added by broadcasting (the original wrote z into every row of its input).
        z_part = m.vector_times_matrix(Array1D.new(list(z), math=m), self.w_z)
        h = m.add(m.mat_mul(self.coords, self.w_xyr), z_part)
        if self.w_out is None:  # no hidden layer
            return m.sigmoid(h)
        act = ACTIVATIONS[self.activation]
        h = act(m, h)
        for w in self.hidden:
            h = act(m, m.mat_mul(h, w))
        return m.sigmoid(m.mat_mul(h, self.w_out))

    def colors(self, out: NDArray) -> NDArray:
        """The network's outputs as colours in [0, 1], on the backend: [size², channels], 1 channel (gray),
        3 (RGB) or 4 (RGBA)."""
        m, n = self.math, self.size * self.size
        mode = self.color_mode
        if mode in ("rgb", "rgba", "bw"):
            return out
        alpha = m.slice2d(out, [0, 3], [n, 1]) if mode.endswith("a") else None
        if mode.startswith("hsv"):
            h, s, v = (m.slice2d(out, [0, i], [n, 1]) for i in range(3))
            # hsv2rgb: rgb = v·mix(1, clamp(|fract(h + (0, 2/3, 1/3))·6 − 3| − 1, 0, 1), s)
            hk = m.add(h, self.hsv_offsets)
            fract = m.subtract(hk, m.floor(hk))
            p = m.abs(m.subtract(m.multiply(fract, self.six), self.three))
            pure = m.clip(m.subtract(p, self.one), 0.0, 1.0)  # the hue at full saturation
            rgb = m.multiply(v, m.add(self.one, m.multiply(s, m.subtract(pure, self.one))))
        else:  # yuv, yuva: luma kept within [0.2, 0.8], chroma centred on 0
            y = m.clip(m.slice2d(out, [0, 0], [n, 1]), 0.2, 0.8)
            uv = m.subtract(m.slice2d(out, [0, 1], [n, 2]), self.uv_offsets)
            rgb = m.clip(m.mat_mul(m.concat2d(y, uv, 1), self.yuv_to_rgb), 0.0, 1.0)
        return rgb if alpha is None else m.concat2d(rgb, alpha, 1)

    def render(self, z: tuple[float, float]) -> np.ndarray:
        """One frame: the picture for latent vector ``z`` as [size, size, 4] RGBA bytes (on the host)."""
        m = self.math
        with m.scope():
            scaled = m.multiply(self.colors(self.network(z)), self.to_bytes)
            values = scaled.get_values().reshape(self.size * self.size, -1)  # waits for the device
        channels = values.shape[1]
        image = np.empty((self.size * self.size, 4), dtype=np.uint8)
        if channels == 1:  # grayscale
            image[:, :3] = np.rint(values)
        else:
            image[:, :channels] = np.rint(values)
        if channels != 4:
            image[:, 3] = 255
        return image.reshape(self.size, self.size, 4)

    def dispose(self) -> None:
        """Frees the arrays the network keeps."""
        constants = [self.coords, self.hsv_offsets, self.yuv_to_rgb, self.uv_offsets, self.one, self.three,
                     self.six, self.to_bytes]
        for a in [*self.weight_arrays(), *constants]:
            a.dispose()


def png_bytes(image: np.ndarray) -> bytes:
    """An [height, width, 4] uint8 RGBA image as a PNG file (the standard library's zlib; no Pillow).

    Example:
        >>> png_bytes(np.zeros((1, 1, 4), np.uint8))[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """
    height, width = image.shape[:2]
    rows = b"".join(b"\x00" + image[y].tobytes() for y in range(height))  # filter 0 per scanline

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6))
            + chunk(b"IEND", b""))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python demos/nn_art/nn_art.py [--seed N] [--out art.png] ...``."""
    parser = argparse.ArgumentParser(description="Random CPPN art with deeplearn (deeplearn.js's nn-art).")
    parser.add_argument("--seed", type=int, default=0, help="which random network (default 0)")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    parser.add_argument("--width", type=int, default=30, help="neurons per hidden layer (default 30)")
    parser.add_argument("--depth", type=int, default=4, help="hidden layers (default 4)")
    parser.add_argument("--activation", choices=list(ACTIVATIONS), default="tanh")
    parser.add_argument("--color", choices=list(COLOR_MODES), default="rgb")
    parser.add_argument("--t", type=float, default=0.0, help="seconds into the animation (moves z)")
    parser.add_argument("--out", default="nn_art.png", help="where to write the PNG (default nn_art.png)")
    args = parser.parse_args(argv)
    math = dl.ENV.math
    cppn = CPPN(args.size, args.width, args.depth, args.activation, args.color, args.seed, math)
    image = cppn.render(latent_at(args.t))  # the first frame also warms the backend up
    times = []
    for i in range(10):
        start = time.perf_counter()
        cppn.render(latent_at(args.t + i / 30))
        times.append(time.perf_counter() - start)
    cppn.dispose()
    with open(args.out, "wb") as f:
        f.write(png_bytes(image))
    print(f"wrote {args.out}: {args.size}×{args.size}, {args.depth} hidden layers of {args.width}, "
          f"{args.activation}, {args.color}, seed {args.seed}")
    print(f"frame time on {math.backend.name}: {1000 * float(np.median(times)):.2f} ms (median of 10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
