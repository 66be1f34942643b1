"""bench/device_check.py, the prepared CUDA check, runs end to end on the CPU (where its
comparisons are CPU against CPU), so the script is known to work before a GPU session uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_device_check_passes_on_the_cpu():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "device_check.py"), "--quick", "--device", "cpu"],
                         capture_output=True, text=True, timeout=900, check=False)
    report = json.loads(run.stdout)
    assert run.returncode == 0, run.stderr[-2000:]
    assert report["failed"] == [] and report["machine"]["checked_device"] == "cpu"
    checks = report["checks"]
    assert {"features", "model", "training", "options", "resume", "whisper", "timing_train", "timing_classify"} <= set(checks)
    assert checks["resume"]["exact"] and checks["training"]["best_val_ua"] >= 0.9
    assert checks["whisper"]["relative_l2_diff"] == 0.0  # CPU against CPU: the very same encoder
    # The default recipe (Whisper front end): one model, asked once; its head learnt the classes.
    assert checks["timing_classify"]["passes"] == 1 and checks["timing_train"]["median_epoch_s"] > 0
    assert checks["timing_train"]["best_val_ua"] >= 0.9 and checks["timing_train"]["encode_s"] > 0
