"""What machine and which package versions a run used (everything the results file records)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["chip_limits", "device_info", "git_commit", "slug", "versions"]

ROOT = Path(__file__).resolve().parent.parent

# Datasheet limits, for "percent of the chip" columns: fp32 (non-tensor-core) TFLOP/s and memory
# bandwidth in GB/s. Matched by substring of the device name; unknown chips get no percentage.
_CHIPS = [
    ("H100 PCIe", {"fp32_tflops": 51.2, "bandwidth_gbps": 2000.0}),
    ("H100 NVL", {"fp32_tflops": 60.0, "bandwidth_gbps": 3900.0}),
    ("H100", {"fp32_tflops": 66.9, "bandwidth_gbps": 3350.0}),
    ("H200", {"fp32_tflops": 66.9, "bandwidth_gbps": 4800.0}),
    ("A100", {"fp32_tflops": 19.5, "bandwidth_gbps": 2039.0}),
]


def chip_limits(name: str) -> dict[str, float] | None:
    for key, limits in _CHIPS:
        if key.lower() in name.lower():
            return dict(limits, source=f"datasheet ({key})")  # type: ignore[arg-type]
    return None


def _run(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=ROOT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _numpy_blas() -> str | None:
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")  # type: ignore[call-arg]
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - informational only
        return None


def device_info(backend: str) -> dict[str, Any]:
    """Name, kind and (GPU) driver/CUDA versions of the device ``backend`` runs on."""
    info: dict[str, Any] = {
        "backend": backend,
        "host_cpu": _cpu_name(),
        "host_cores": _cores(),
        "host_memory_bytes": _memory_bytes(),
        "os": platform.platform(),
    }
    if backend == "cpu":
        info.update(kind="cpu", name=f"{_cpu_name()} ({_cores()} cores)", blas=_numpy_blas())
        return info
    info["kind"] = "gpu"
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    if smi:
        name, driver, mem = [s.strip() for s in smi.splitlines()[0].split(",")]
        info.update(name=name, driver=driver, memory=mem)
    try:
        import cupy

        rt = cupy.cuda.runtime
        props = rt.getDeviceProperties(0)
        info.setdefault("name", props["name"].decode() if isinstance(props["name"], bytes) else props["name"])
        info["cuda_runtime"] = _cuda_version(rt.runtimeGetVersion())
        info["cuda_driver_api"] = _cuda_version(rt.driverGetVersion())
        info["compute_capability"] = f"{props['major']}.{props['minor']}"
    except Exception:  # noqa: BLE001, S110 - CuPy missing: PyTorch may still name the GPU
        pass
    try:
        import torch

        if torch.cuda.is_available():
            info.setdefault("name", torch.cuda.get_device_name(0))
            info["torch_cuda"] = torch.version.cuda
            info["cudnn"] = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001, S110 - informational only
        pass
    info.setdefault("name", "unknown GPU")
    limits = chip_limits(info["name"])
    if limits:
        info["limits"] = limits
    return info


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions(loaded_only: bool = False) -> dict[str, str | None]:
    """Python and package versions (None where a package is not installed)."""
    import numpy

    out: dict[str, str | None] = {"python": platform.python_version(), "numpy": numpy.__version__}
    cupy_dist = next(
        (d for d in ("cupy", "cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x") if _version(d)), None
    )
    out["cupy"] = _version(cupy_dist) if cupy_dist else None
    for name, dist in (
        ("torch", "torch"),
        ("jax", "jax"),
        ("jaxlib", "jaxlib"),
        ("matplotlib", "matplotlib"),
    ):
        out[name] = _version(dist)
    try:
        sys.path.insert(0, str(ROOT))
        import deeplearn

        out["deeplearn"] = deeplearn.__version__
    except Exception:  # noqa: BLE001
        out["deeplearn"] = None
    return out


def git_commit() -> tuple[str, bool | None]:
    """(short commit hash, whether the tree has uncommitted changes); ("unknown", None) without
    git. ``DEEPLEARN_COMMIT`` overrides (for copies of the tree without .git)."""
    forced = os.environ.get("DEEPLEARN_COMMIT")
    if forced:
        return slug(forced)[:12], None
    # safe.directory: a copied tree may belong to another user, which git otherwise refuses
    git = ["git", "-c", "safe.directory=*"]
    rev = _run([*git, "rev-parse", "--short", "HEAD"])
    if not rev:
        return _commit_from_files(ROOT / ".git") or "unknown", None
    status = _run([*git, "status", "--porcelain", "--untracked-files=no"])
    return rev, bool(status)


def _commit_from_files(git_dir: Path) -> str | None:
    """HEAD's commit read from the .git folder itself (for machines without the git program)."""
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head[:7] if re.fullmatch(r"[0-9a-f]{40}", head) else None
        ref = head.split(":", 1)[1].strip()
        ref_file = git_dir / ref
        if ref_file.exists():
            return ref_file.read_text().strip()[:7]
        packed = git_dir / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0][:7]
    except OSError:
        pass
    return None


def slug(text: str) -> str:
    """A file-name-safe lower-case form: "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3".

    Example:
        >>> slug("Intel(R) Xeon(R) CPU @ 2.20GHz (2 cores)")
        'intel-xeon-cpu-2-20ghz-2-cores'
    """
    text = re.sub(r"\((r|tm)\)", "", text, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "device"


def today() -> str:
    return _dt.date.today().strftime("%Y%m%d")
