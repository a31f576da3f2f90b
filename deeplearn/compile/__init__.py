"""How a Session call runs once it is recorded (docs/design.md §7), knowing nothing of Graphs.

``program``: a call as a flat, typed Program of kernels over slots; ``recorder``: turns the
ops a call runs into one; ``materialize``: its results as NDArrays, made when read;
``cuda_graph``: a training Program captured as one CUDA graph, variables and optimizer state
updated in place. Imports CuPy lazily, only where a Program runs on CUDA."""
