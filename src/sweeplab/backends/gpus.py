"""Which GPUs this machine shows, and how trials share them.

The visible GPUs are ``CUDA_VISIBLE_DEVICES`` when it is set (an empty value means none),
else what the NVIDIA driver lists (``nvidia-smi``), else none. A trial asking for
``gpus=g`` gets its own ``CUDA_VISIBLE_DEVICES``: with g <= 1, ``floor(1/g)`` trials share
one device at a time; with a whole g > 1, each trial has g devices to itself. Trials are
never put on a device beyond that, so a GPU is never oversubscribed.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess

from sweeplab.errors import BackendError


def visible_gpus() -> list[str]:
    """Device ids as CUDA names them in this process."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def gpu_slots(gpus_per_trial: float, devices: list[str]) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of each slot, one slot per trial that may run at once."""
    if gpus_per_trial <= 0:
        return []
    if not devices:
        raise BackendError(
            f"trials ask for gpus={gpus_per_trial:g} but no GPU is visible (CUDA_VISIBLE_DEVICES "
            "is empty or unset and nvidia-smi lists none): drop the gpus resource"
        )
    if gpus_per_trial <= 1:
        per_device = math.floor(1 / gpus_per_trial + 1e-9)
        # round robin, so that fewer slots than shares still spread over every device
        return [device for _ in range(per_device) for device in devices]
    if gpus_per_trial != int(gpus_per_trial):
        raise BackendError(f"gpus={gpus_per_trial:g}: above 1, ask for a whole number of GPUs")
    size = int(gpus_per_trial)
    if size > len(devices):
        raise BackendError(f"trials ask for {size} GPUs but only {len(devices)} are visible")
    return [",".join(devices[i : i + size]) for i in range(0, len(devices) - size + 1, size)]
