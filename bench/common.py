"""Helpers shared by the benchmark scripts (no Django needed)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def corpora_dir() -> Path:
    """``$SER_CORPORA_DIR`` or ``../shared/corpora`` beside the repository."""
    return Path(os.environ.get("SER_CORPORA_DIR", ROOT.parent / "shared" / "corpora")).resolve()


def machine() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
