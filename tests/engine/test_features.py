"""The log-Mel / MFCC front end against librosa, padding invariance, configs and statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devsupport.synth import SR, speech_like
from recognition.engine.features import (
    FeatureConfig,
    FeatureExtractor,
    FeatureStats,
    SpeakerCentre,
    frame_count,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    prepare_waveform,
)

librosa = pytest.importorskip("librosa")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def utterance() -> np.ndarray:
    """About 1.5 s of speech-like audio with a noise floor (no exact zeros in any band)."""
    return speech_like("happy", 1.0, seed=3)


def librosa_logmel(y: np.ndarray) -> np.ndarray:
    """librosa's log-Mel with our framing: (frames, 64) in dB."""
    power = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=512, hop_length=160, win_length=400, center=False, n_mels=64, power=2.0
    )
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None).T


# --- Mel scale and filterbank --------------------------------------------------------------


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "f_min", "f_max"),
    [
        (16000, 512, 64, 0.0, None),
        (16000, 512, 40, 0.0, None),
        (8000, 256, 40, 0.0, None),
        (16000, 512, 64, 60.0, 7600.0),
        (16000, 1024, 80, 125.0, 4000.0),
    ],
)
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, f_min, f_max):
    ours = mel_filterbank(sr, n_fft, n_mels, f_min, f_max)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, dtype=np.float64)
    assert ours.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-8)


def test_mel_filterbank_reference_values():
    # Computed once with librosa 0.11 (float64) and pasted here, so the test also guards
    # against librosa itself changing.
    fb = mel_filterbank(16000, 512, 64)
    row_sums = fb.sum(1)
    expected_sums = {
        0: 0.028586793166448448,
        1: 0.03518877869040147,
        10: 0.030765644237084798,
        31: 0.03220459025596453,
        63: 0.03201951243402381,
    }
    for row, value in expected_sums.items():
        assert row_sums[row] == pytest.approx(value, rel=1e-9)
    assert fb[0, 0] == 0.0
    assert fb[0, 1] == pytest.approx(0.01451128169028786, rel=1e-9)
    assert int(np.argmax(fb[10])) == 16
    assert fb[10].max() == pytest.approx(0.016690132760924223, rel=1e-9)
    assert int(np.argmax(fb[63])) == 244
    assert fb[63].max() == pytest.approx(0.0027300215116008676, rel=1e-9)
    assert (fb >= 0).all()


def test_slaney_mel_scale_known_points():
    assert float(hz_to_mel(0.0)) == 0.0
    assert float(hz_to_mel(500.0)) == pytest.approx(7.5)
    assert float(hz_to_mel(1000.0)) == pytest.approx(15.0)
    assert float(hz_to_mel(4000.0)) == pytest.approx(35.163760314616646)
    assert float(hz_to_mel(8000.0)) == pytest.approx(45.245640471924965)
    assert float(mel_to_hz(15.0)) == pytest.approx(1000.0)
    assert float(mel_to_hz(30.0)) == pytest.approx(2804.6441307389214)
    freqs = np.array([0.0, 50.0, 999.0, 1000.0, 1001.0, 3000.0, 8000.0, 22050.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs)), freqs, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(hz_to_mel(freqs), librosa.hz_to_mel(freqs), rtol=1e-12)


# --- log-Mel and MFCC against librosa ------------------------------------------------------


def test_logmel_matches_librosa(utterance):
    cfg = FeatureConfig(trim="none")
    ours = FeatureExtractor(cfg).extract(utterance, normalise=False).numpy()
    ref = librosa_logmel(utterance)
    assert ours.shape == ref.shape == (frame_count(utterance.size, cfg), 64)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    ("n_fft", "win_ms", "n_mels", "f_min", "f_max"),
    [(512, 25.0, 64, 0.0, None), (400, 25.0, 40, 20.0, 7600.0), (1024, 50.0, 128, 0.0, None), (512, 25.0, 13, 300.0, 4000.0)],
)
def test_banded_mel_projection_equals_dense_filterbank(n_fft, win_ms, n_mels, f_min, f_max):
    """The per-band product gives what one dense (n_mels, bins) product gives, batched and padded too."""
    cfg = FeatureConfig(n_fft=n_fft, win_ms=win_ms, n_mels=n_mels, f_min=f_min, f_max=f_max, trim="none")
    rng = np.random.default_rng(0)
    waves = torch.from_numpy(rng.standard_normal((3, 9000)).astype(np.float32))
    lengths = torch.tensor([9000, 6000, 700])
    for i, n in enumerate(lengths.tolist()):
        waves[i, n:] = 0
    ours, frames = FeatureExtractor(cfg).raw(waves, lengths)
    window = torch.hann_window(cfg.win_length, periodic=True)
    spec = torch.stft(waves, n_fft, cfg.hop_length, cfg.win_length, window, center=False, return_complex=True)
    fb = torch.from_numpy(mel_filterbank(SR, n_fft, n_mels, f_min, f_max)).float()
    dense = 10 * torch.log10(torch.clamp(fb @ spec.abs().square(), min=1e-10)).transpose(1, 2)
    for i, n in enumerate(frames.tolist()):
        np.testing.assert_allclose(ours[i, :n].numpy(), dense[i, :n].numpy(), atol=2e-3)
        assert not ours[i, n:].any()


def test_mfcc_matches_librosa(utterance):
    cfg = FeatureConfig(kind="mfcc", deltas=False, trim="none")
    ours = FeatureExtractor(cfg).extract(utterance, normalise=False).numpy()
    ref_logmel = librosa_logmel(utterance)
    ref = librosa.feature.mfcc(S=ref_logmel.T, n_mfcc=20, dct_type=2, norm="ortho").T
    assert ours.shape == ref.shape == (ref_logmel.shape[0], 20)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-3)
    # The DCT alone, on our own log-Mel: tighter.
    own_logmel = FeatureExtractor(FeatureConfig(trim="none")).extract(utterance, normalise=False).numpy()
    from_own = librosa.feature.mfcc(S=own_logmel.T.astype(np.float64), n_mfcc=20, dct_type=2, norm="ortho").T
    np.testing.assert_allclose(ours, from_own, rtol=1e-6, atol=1e-4)  # float32 on c0 ~ -360


def test_mfcc_deltas_layout(utterance):
    cfg = FeatureConfig(kind="mfcc", deltas=True, trim="none")
    assert cfg.n_features == 60
    feats = FeatureExtractor(cfg).extract(utterance, normalise=False).numpy()
    static = FeatureExtractor(FeatureConfig(kind="mfcc", deltas=False, trim="none")).extract(utterance, normalise=False).numpy()
    np.testing.assert_allclose(feats[:, :20], static, atol=1e-5)
    # Interior frames: the standard regression delta over +-2 frames.
    t = 50
    expected = sum(k * (static[t + k] - static[t - k]) for k in (1, 2)) / 10.0
    np.testing.assert_allclose(feats[t, 20:40], expected, atol=1e-4)


def test_frame_count():
    cfg = FeatureConfig()
    assert (cfg.win_length, cfg.hop_length) == (400, 160)
    assert frame_count(512, cfg) == 1
    assert frame_count(671, cfg) == 1
    assert frame_count(672, cfg) == 2
    assert frame_count(16000, cfg) == (16000 - 512) // 160 + 1 == 97
    assert frame_count(100, cfg) == 1  # shorter than n_fft: one (zero-padded) frame
    assert frame_count(0, cfg) == 1
    lengths = torch.tensor([100, 512, 672, 16000])
    assert frame_count(lengths, cfg).tolist() == [1, 1, 2, 97]
    ex = FeatureExtractor(FeatureConfig(trim="none"))
    for n in (300, 512, 700, 16000):
        assert ex.extract(np.zeros(n, np.float32), normalise=False).shape[0] == frame_count(n, cfg)


# --- padding invariance --------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        FeatureConfig(trim="none"),
        FeatureConfig(trim="none", utterance_cmn=True),
        FeatureConfig(kind="mfcc", deltas=True, trim="none"),
        FeatureConfig(kind="mfcc", deltas=True, utterance_cmn=True, trim="none"),
    ],
    ids=["logmel", "logmel-cmn", "mfcc-deltas", "mfcc-deltas-cmn"],
)
def test_padding_invariance(cfg):
    rng = np.random.default_rng(0)
    stats = FeatureStats(
        torch.from_numpy(rng.normal(0, 5, cfg.n_features)).float(),
        torch.from_numpy(rng.uniform(0.5, 3, cfg.n_features)).float(),
    )
    ex = FeatureExtractor(cfg, stats)
    long = speech_like("angry", 1.2, seed=1)
    shorts = [speech_like("sad", 0.4, seed=2), speech_like("happy", 0.1, seed=4, lead_silence=0.0)[:300]]
    for short in shorts:
        batch = torch.zeros(2, long.size)
        batch[0] = torch.from_numpy(long)
        batch[1, : short.size] = torch.from_numpy(short)
        lengths = torch.tensor([long.size, short.size])
        for normalise in (True, False):
            fn = ex if normalise else ex.raw
            feats, flen = fn(batch, lengths)
            alone, alone_len = fn(torch.from_numpy(short)[None], torch.tensor([short.size]))
            n = int(alone_len[0])
            assert int(flen[1]) == n == frame_count(short.size, cfg)
            assert alone.shape[1] == n
            torch.testing.assert_close(feats[1, :n], alone[0], atol=1e-4, rtol=0)
            assert torch.count_nonzero(feats[1, n:]) == 0
            assert torch.isfinite(feats).all()


@pytest.mark.parametrize(
    "cfg",
    [FeatureConfig(trim="none"), FeatureConfig(kind="mfcc", deltas=True, trim="none")],
    ids=["logmel", "mfcc-deltas"],
)
def test_a_large_cpu_batch_is_sliced_without_changing_a_value(cfg):
    """A batch past the slice size (1536 frames: here 5 rows per slice, 3 slices) gives exactly
    what the whole batch computed at once gives, padded rows included."""
    rng = np.random.default_rng(3)
    waves = [speech_like(label, 2.0, seed=i) for i, label in enumerate(["angry", "sad", "happy"] * 4)]
    lengths = torch.tensor([w.size - int(rng.integers(0, 8000)) for w in waves])
    batch = torch.zeros(len(waves), max(w.size for w in waves))
    for i, (w, n) in enumerate(zip(waves, lengths, strict=True)):
        batch[i, :n] = torch.from_numpy(w[:n])
    ex = FeatureExtractor(cfg)
    sliced, sliced_len = ex.uncentred(batch, lengths)
    whole, whole_len = ex._uncentred(batch, lengths)
    assert sliced.shape == whole.shape and sliced.shape[0] == 12 and sliced.shape[1] * 5 <= 1536 < sliced.shape[1] * 6
    assert torch.equal(sliced, whole) and torch.equal(sliced_len, whole_len)


def test_utterance_cmn_zero_mean(utterance):
    feats = FeatureExtractor(FeatureConfig(trim="none", utterance_cmn=True)).extract(utterance, normalise=False)
    torch.testing.assert_close(feats.mean(0), torch.zeros(64), atol=1e-3, rtol=0)


def test_speaker_cmn_subtracts_the_speaker_mean_and_falls_back_to_the_utterance_mean(utterance):
    cfg = FeatureConfig(trim="none", speaker_cmn=True)
    ex = FeatureExtractor(cfg)
    other = speech_like("sad", 0.6, seed=5)
    centre = ex.speaker_mean([utterance, other])  # (64,)
    # The speaker mean is the mean over all frames of both utterances.
    frames = [ex.uncentred(torch.from_numpy(w)[None], torch.tensor([w.size]))[0][0] for w in (utterance, other)]
    torch.testing.assert_close(centre, torch.cat(frames).mean(0), atol=1e-4, rtol=0)
    centred = ex.extract(utterance, normalise=False, centre=centre)
    torch.testing.assert_close(centred, frames[0] - centre, atol=1e-4, rtol=0)
    # Speaker-centred utterances keep their level relative to the speaker: not zero-mean each.
    assert float(centred.mean()) > 0.5 > float(ex.extract(other, normalise=False, centre=centre).mean())
    # No speaker mean: exactly per-utterance CMN.
    cmn = FeatureExtractor(FeatureConfig(trim="none", utterance_cmn=True))
    torch.testing.assert_close(ex.extract(utterance, normalise=False), cmn.extract(utterance, normalise=False))


def test_speaker_cmn_batched_with_padding_and_unknown_rows(utterance):
    ex = FeatureExtractor(FeatureConfig(trim="none", speaker_cmn=True))
    short = speech_like("sad", 0.4, seed=2)
    centre = ex.speaker_mean([short])
    batch = torch.zeros(2, utterance.size)
    batch[0] = torch.from_numpy(utterance)
    batch[1, : short.size] = torch.from_numpy(short)
    lengths = torch.tensor([utterance.size, short.size])
    centres = torch.stack([torch.full((64,), float("nan")), centre])  # row 0: speaker unknown
    feats, flen = ex(batch, lengths, centres)
    n = int(flen[1])
    torch.testing.assert_close(feats[1, :n], ex.extract(short, centre=centre), atol=1e-4, rtol=0)
    torch.testing.assert_close(feats[0], ex.extract(utterance), atol=1e-4, rtol=0)
    assert torch.count_nonzero(feats[1, n:]) == 0


def test_speaker_centre_accumulates_and_starts_empty(utterance):
    ex = FeatureExtractor(FeatureConfig(trim="none", speaker_cmn=True))
    running = SpeakerCentre(ex)
    assert running.value is None and running.frames == 0
    other = speech_like("angry", 0.8, seed=7)
    running.add([utterance])
    running.add([other])
    torch.testing.assert_close(running.value, ex.speaker_mean([utterance, other]), atol=1e-4, rtol=0)
    assert running.frames == frame_count(utterance.size, ex.config) + frame_count(other.size, ex.config)
    with pytest.raises(ValueError, match="no audio"):
        ex.speaker_mean([])


# --- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "spectrogram"},
        {"trim": "silence"},
        {"f_max": 9000.0},
        {"f_min": 4000.0, "f_max": 3000.0},
        {"f_min": -1.0},
        {"win_ms": 40.0},  # 640 samples > n_fft 512
        {"kind": "mfcc", "n_mfcc": 0},
        {"kind": "mfcc", "n_mfcc": 65},
        {"utterance_cmn": True, "speaker_cmn": True},
    ],
)
def test_feature_config_validation(kwargs):
    with pytest.raises(ValueError):
        FeatureConfig(**kwargs)


def test_feature_config_round_trip():
    for cfg in (
        FeatureConfig(),
        FeatureConfig(kind="mfcc", n_mfcc=13, deltas=False, f_min=50.0, f_max=7000.0, trim="vad", utterance_cmn=True),
    ):
        data = cfg.to_dict()
        assert FeatureConfig.from_dict(data) == cfg
        assert FeatureConfig.from_dict(dict(data)).n_features == cfg.n_features
    assert FeatureConfig(kind="mfcc", n_mfcc=13).n_features == 39
    assert FeatureConfig(n_mels=40).n_features == 40
    assert FeatureConfig(kind="mfcc", n_mfcc=13, deltas=False).n_features == 13
    with pytest.raises(ValueError, match="unknown feature settings"):
        FeatureConfig.from_dict({**FeatureConfig().to_dict(), "preemphasis": 0.97})


# --- statistics ----------------------------------------------------------------------------


def test_feature_stats_accumulate_matches_numpy():
    rng = np.random.default_rng(1)
    parts = [rng.normal(3.0, 2.0, (n, 5)).astype(np.float32) * np.arange(1, 6) for n in (7, 1, 30, 12)]
    stats = FeatureStats.accumulate(torch.from_numpy(p) for p in parts)  # any iterable, even a generator
    joined = np.concatenate(parts).astype(np.float64)
    np.testing.assert_allclose(stats.mean.numpy(), joined.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.std.numpy(), joined.std(0), rtol=1e-5, atol=1e-5)
    assert stats.mean.dtype == stats.std.dtype == torch.float32


def test_feature_stats_edge_cases():
    with pytest.raises(ValueError):
        FeatureStats.accumulate([])
    constant = FeatureStats.accumulate([torch.full((10, 3), 2.0)])
    assert (constant.std > 0).all()  # never a zero divisor
    torch.testing.assert_close(constant.mean, torch.full((3,), 2.0))
    ident = FeatureStats.identity(4)
    assert ident.mean.tolist() == [0.0] * 4 and ident.std.tolist() == [1.0] * 4


def test_extractor_normalises_with_stats(utterance):
    cfg = FeatureConfig(trim="none")
    ex = FeatureExtractor(cfg)
    raw = ex.extract(utterance, normalise=False)
    stats = FeatureStats.accumulate([raw])
    ex.set_stats(stats)
    normed = ex.extract(utterance)
    torch.testing.assert_close(normed.mean(0), torch.zeros(64), atol=1e-3, rtol=0)
    torch.testing.assert_close(normed.std(0, unbiased=False), torch.ones(64), atol=1e-3, rtol=0)
    torch.testing.assert_close(ex.stats.mean, stats.mean)


# --- trimming ------------------------------------------------------------------------------


def _padded_tone(lead: float, tone: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(tone * SR)) / SR
    body = 0.5 * np.sin(2 * np.pi * 220 * t)
    silence = np.zeros(int(lead * SR))
    wave = np.concatenate([silence, body, silence]) + rng.normal(0, 1e-4, int((2 * lead + tone) * SR))
    return wave.astype(np.float32)


def test_prepare_waveform_energy_trims_edges():
    wave = _padded_tone(0.6, 1.0)
    trimmed = prepare_waveform(wave, FeatureConfig(trim="energy"))
    # 1 s of tone plus the 0.1 s margins on each side, give or take a frame.
    assert abs(trimmed.size / SR - 1.2) < 0.05
    start = int(np.flatnonzero(np.isin(wave, trimmed[:1]))[0])
    np.testing.assert_array_equal(wave[start : start + trimmed.size], trimmed)  # a contiguous cut
    assert 0.45 < start / SR < 0.55

    speech = speech_like("angry", 1.0, seed=1, lead_silence=0.5)
    cut = prepare_waveform(speech, FeatureConfig(trim="energy"))
    assert cut.size < speech.size - int(0.6 * SR)


def test_prepare_waveform_none_keeps_everything():
    wave = _padded_tone(0.6, 1.0)
    kept = prepare_waveform(wave, FeatureConfig(trim="none"))
    np.testing.assert_array_equal(kept, wave)
