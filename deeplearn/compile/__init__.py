"""Compiled execution of recorded Session plans (DESIGN.md §7). ``cuda_graph``: a recorded
training step captured as one CUDA graph. Imports CuPy lazily, only where a plan runs on CUDA."""
