"""Checkpoints: exact round trip, atomic saves, and refusal of every file it cannot trust."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from devsupport.synth import speech_like
from recognition.engine import ENGINE_VERSION
from recognition.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from recognition.engine.features import FeatureConfig, FeatureStats
from recognition.engine.model import EmotionNet, ModelConfig

LABELS = ["neutral", "happy", "sad"]
FEATURES = FeatureConfig(n_mels=16, trim="none")


pytestmark = pytest.mark.usefixtures("one_thread")


class NotAllowed:
    """Any class: unpickling it needs arbitrary code, which weights_only refuses."""

    def __init__(self) -> None:
        self.value = 42


def model_config(**overrides) -> ModelConfig:
    base = {"n_features": 16, "n_classes": 3, "conv_channels": (4, 8, 8), "lstm_hidden": 16, "attention_dim": 16}
    return ModelConfig(**{**base, **overrides})


def make_checkpoint(seed: int = 0) -> Checkpoint:
    torch.manual_seed(seed)
    cfg = model_config()
    model = EmotionNet(cfg)
    gen = torch.Generator().manual_seed(seed)
    stats = FeatureStats(torch.randn(16, generator=gen) * 10, torch.rand(16, generator=gen) + 0.5)
    return Checkpoint(
        model_config=cfg,
        feature_config=FEATURES,
        labels=list(LABELS),
        stats=stats,
        state_dict={k: v.clone() for k, v in model.state_dict().items()},
        metrics={"validation": {"ua": 0.5, "confusion": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}},
        extra={"note": "test", "history": [{"epoch": 1, "ua": 0.5}]},
    )


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "model.pt", make_checkpoint())


def predict(ck: Checkpoint) -> tuple[torch.Tensor, torch.Tensor]:
    model, extractor = ck.build_model(), ck.build_extractor()
    waves = [speech_like("happy", 0.6, seed=1), speech_like("sad", 0.3, seed=2)]
    batch = torch.zeros(2, max(w.size for w in waves))
    for i, w in enumerate(waves):
        batch[i, : w.size] = torch.from_numpy(w)
    with torch.no_grad():
        feats, flen = extractor(batch, torch.tensor([w.size for w in waves]))
        return model(feats, flen)


def write_payload(path: Path, payload) -> Path:
    torch.save(payload, path)
    return path


def expect_refusal(path: Path, match: str | None = None) -> CheckpointError:
    """load_checkpoint must raise CheckpointError (exactly that type family, never another)."""
    try:
        load_checkpoint(path)
    except CheckpointError as exc:
        if match is not None:
            assert match.lower() in str(exc).lower(), str(exc)
        assert str(exc).strip()
        return exc
    except Exception as exc:  # pragma: no cover - the failure we are testing for
        pytest.fail(f"{type(exc).__name__} instead of CheckpointError: {exc}")
    pytest.fail("the checkpoint was accepted")


# --- round trip ----------------------------------------------------------------------------


def test_round_trip_identical_outputs(tmp_path):
    original = make_checkpoint()
    path = save_checkpoint(tmp_path / "nested" / "dir" / "model.pt", original)
    assert path.is_file()
    loaded = load_checkpoint(path)
    assert loaded.model_config == original.model_config
    assert loaded.feature_config == original.feature_config
    assert loaded.labels == LABELS
    assert loaded.engine_version == ENGINE_VERSION
    assert loaded.metrics == original.metrics
    assert loaded.extra == original.extra
    torch.testing.assert_close(loaded.stats.mean, original.stats.mean, rtol=0, atol=0)
    torch.testing.assert_close(loaded.stats.std, original.stats.std, rtol=0, atol=0)
    assert loaded.state_dict.keys() == original.state_dict.keys()
    for key, value in original.state_dict.items():
        assert torch.equal(loaded.state_dict[key], value), key
    logits_a, attention_a = predict(original)
    logits_b, attention_b = predict(loaded)
    assert torch.equal(logits_a, logits_b)
    assert torch.equal(attention_a, attention_b)
    assert not loaded.build_model().training


def test_payload_has_format_tag(saved):
    payload = torch.load(saved, weights_only=True)
    assert payload["format"] == CHECKPOINT_FORMAT
    assert payload["engine_version"] == ENGINE_VERSION


def test_overwrite_replaces(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, make_checkpoint(seed=0))
    save_checkpoint(path, make_checkpoint(seed=1))
    loaded = load_checkpoint(path)
    expected = make_checkpoint(seed=1).state_dict
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in expected.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


# --- broken files --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    exc = expect_refusal(tmp_path / "nope.pt", match="no such checkpoint")
    assert "nope.pt" in str(exc)


def test_directory_is_not_a_checkpoint(tmp_path):
    expect_refusal(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    expect_refusal(path, match="not a readable checkpoint")


def test_truncated_file(saved, tmp_path):
    data = saved.read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 64):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        expect_refusal(path, match="not a readable checkpoint")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    expect_refusal(path, match="not a readable checkpoint")


def test_text_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("this is not a model\n")
    expect_refusal(path)


def test_plain_dict_without_format_tag(tmp_path):
    path = write_payload(tmp_path / "plain.pt", {"state_dict": make_checkpoint().state_dict, "labels": LABELS})
    expect_refusal(path, match="not a SER studio checkpoint")
    bare = write_payload(tmp_path / "bare.pt", make_checkpoint().state_dict)
    expect_refusal(bare, match="not a SER studio checkpoint")
    tensor = write_payload(tmp_path / "tensor.pt", torch.zeros(3))
    expect_refusal(tensor, match="not a SER studio checkpoint")


def test_arbitrary_object_is_refused(tmp_path):
    payload = make_checkpoint().to_payload()
    payload["extra"] = {"evil": NotAllowed()}
    path = write_payload(tmp_path / "object.pt", payload)
    expect_refusal(path, match="not a readable checkpoint")
    # A raw pickle with a reduce hook is refused too, and the hook never runs.
    raw = tmp_path / "reduce.pt"
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    raw.write_bytes(pickle.dumps({"format": CHECKPOINT_FORMAT, "x": Exploit()}, protocol=2))
    expect_refusal(raw)
    assert not marker.exists()


# --- content checks ------------------------------------------------------------------------


def _tampered(tmp_path: Path, change) -> Path:
    payload = copy.deepcopy(make_checkpoint().to_payload())
    change(payload)
    return write_payload(tmp_path / "tampered.pt", payload)


def test_wrong_engine_major_version(tmp_path):
    path = _tampered(tmp_path, lambda p: p.update(engine_version="2.0"))
    exc = expect_refusal(path, match="engine 2.0")
    assert ENGINE_VERSION in str(exc)
    minor = _tampered(tmp_path, lambda p: p.update(engine_version=ENGINE_VERSION.split(".")[0] + ".99"))
    assert load_checkpoint(minor).engine_version.endswith(".99")  # same major: readable


def test_missing_keys(tmp_path):
    for key in ("labels", "state_dict", "feature_mean", "model_config"):
        path = _tampered(tmp_path, lambda p, key=key: p.pop(key))
        expect_refusal(path, match=key)


@pytest.mark.parametrize(
    "labels",
    [["neutral", "happy"], ["neutral", "happy", "sad", "angry"], ["neutral", "neutral", "sad"], ["neutral", "", "sad"], "neutral", [1, 2, 3]],
    ids=["too-few", "too-many", "duplicate", "empty-name", "not-a-list", "not-strings"],
)
def test_bad_labels(tmp_path, labels):
    path = _tampered(tmp_path, lambda p: p.update(labels=labels))
    expect_refusal(path, match="labels")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("feature_mean", torch.zeros(15), "mean"),
        ("feature_mean", torch.zeros(16, 1), "mean"),
        ("feature_std", torch.ones(17), "std"),
        ("feature_mean", torch.full((16,), float("nan")), "mean"),
        ("feature_std", torch.full((16,), float("inf")), "std"),
        ("feature_std", torch.zeros(16), "standard deviation"),
        ("feature_std", -torch.ones(16), "standard deviation"),
        ("feature_mean", [0.0] * 16, "mean"),
        ("feature_std", torch.ones(16, dtype=torch.complex64), "std"),
    ],
)
def test_bad_statistics(tmp_path, key, value, match):
    path = _tampered(tmp_path, lambda p: p.update({key: value}))
    expect_refusal(path, match=match)


def test_weights_of_another_architecture(tmp_path):
    other = EmotionNet(model_config(conv_channels=(8, 8, 8), lstm_hidden=24)).state_dict()
    path = _tampered(tmp_path, lambda p: p.update(state_dict=other))
    expect_refusal(path, match="do not fit")
    # Same architecture, one tensor missing or one extra.
    missing = _tampered(tmp_path, lambda p: p["state_dict"].pop("classifier.weight"))
    expect_refusal(missing, match="do not fit")
    extra = _tampered(tmp_path, lambda p: p["state_dict"].update({"surprise.weight": torch.zeros(2)}))
    expect_refusal(extra, match="do not fit")


def test_non_finite_weights(tmp_path):
    def poison(p):
        p["state_dict"]["classifier.weight"][0, 0] = float("nan")

    expect_refusal(_tampered(tmp_path, poison), match="non-finite")

    def inf(p):
        p["state_dict"]["lstm.weight_ih_l0"][1, 1] = float("inf")

    expect_refusal(_tampered(tmp_path, inf), match="non-finite")


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(model_config=None),
        lambda p: p.update(model_config=[1, 2]),
        lambda p: p["model_config"].update(attention_heads=2),
        lambda p: p["model_config"].update(conv_channels=[4, 8]),
        lambda p: p["model_config"].update(pools=5),
        lambda p: p["model_config"].update(n_classes=1),
        lambda p: p["model_config"].update(lstm_hidden=0),
        lambda p: p["model_config"].update(dropout=2.0),
        lambda p: p["model_config"].update(n_features=32),
        lambda p: p.update(feature_config={"kind": "wavelets"}),
        lambda p: p["feature_config"].update(n_mels=8),
        lambda p: p.update(state_dict=[1, 2]),
        lambda p: p["state_dict"].update({"x": 3}),
        lambda p: p["state_dict"].update({7: torch.zeros(1)}),
        lambda p: p.update(metrics=[1]),
        lambda p: p.update(engine_version=None),
    ],
)
def test_other_tampering_raises_checkpoint_error(tmp_path, change):
    expect_refusal(_tampered(tmp_path, change))


# --- atomic save ---------------------------------------------------------------------------


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint(path, make_checkpoint(seed=0))
    before = path.read_bytes()

    real_save = torch.save

    def failing_save(obj, fh, *args, **kwargs):
        fh.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, make_checkpoint(seed=1))
    monkeypatch.setattr(torch, "save", real_save)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary files left
    load_checkpoint(path)


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(obj, fh, *args, **kwargs):
        raise KeyboardInterrupt  # even a BaseException cleans up

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "model.pt", make_checkpoint())
    assert list(tmp_path.iterdir()) == []

