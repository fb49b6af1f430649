"""torchvision as a reference model library, importable next to the CPU build of PyTorch.

torchvision's PyPI wheel is built against CUDA PyTorch: its compiled operators (nms, ...) do not
register against the CPU build and its import fails ("operator torchvision::nms does not
exist"). The model definitions are pure Python and need none of them, so the module that
registers those operators' meta kernels is stubbed out first. Tests and benchmarks share this.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def torchvision_models() -> Any:
    """`torchvision.models`; raises ImportError if torchvision is not installed."""
    sys.modules.setdefault("torchvision._meta_registrations",
                           types.ModuleType("torchvision._meta_registrations"))
    import torchvision

    return torchvision.models
