"""Helpers shared by the benchmark scripts (no Django needed)."""

from __future__ import annotations

import os
import platform
import statistics
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


def ravdess_labels() -> list[str]:
    """RAVDESS's eight classes in code order (01 neutral ... 08 surprised)."""
    from training.engine.corpora.ravdess import EMOTIONS

    return [EMOTIONS[code] for code in sorted(EMOTIONS)]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0-1) with linear interpolation, as numpy's default."""
    import numpy as np

    return float(np.percentile(values, 100 * q))


def latency_stats(values: list[float]) -> dict:
    """n, median, p95 and max of millisecond values, rounded to 0.1 ms (None when empty)."""
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 1) if values else None,
        "p95_ms": round(percentile(values, 0.95), 1) if values else None,
        "max_ms": round(max(values), 1) if values else None,
    }
