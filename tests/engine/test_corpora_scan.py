"""Corpus scanning: folder-per-emotion and CSV layouts, audio problems, summaries, format
detection, real corpora."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.engine.helpers import CORPORA, layout, only_reason, parsed, wav
from training.engine.corpora import (
    FORMATS,
    CorpusError,
    CorpusScan,
    detect_format,
    scan_corpus,
)

# --- folder per emotion ----------------------------------------------------------------------

def test_folders_without_speakers(tmp_path: Path) -> None:
    wav(tmp_path, "angry/a.wav", "Sad/b.wav", "fear/c.wav", "Pleasant_Surprise/d.WAV", "grumpy/e.wav", "f.wav")
    (tmp_path / "README.txt").write_text("hello")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    wav(tmp_path, "__MACOSX/angry/._a.wav", "angry/.hidden.wav")
    scan = scan_corpus(tmp_path)
    assert scan.format == "folders"
    assert parsed(scan) == {
        "a.wav": ("angry", None, "angry"),
        "b.wav": ("sad", None, "Sad"),
        "c.wav": ("fearful", None, "fear"),
        "d.WAV": ("surprised", None, "Pleasant_Surprise"),
    }
    assert not scan.has_speakers and scan.speakers() == []
    assert {s.path.name: s.reason for s in scan.skipped} == {
        "e.wav": "unknown emotion folder 'grumpy'",
        "f.wav": "not inside an emotion folder (expected <emotion>/<file> or <speaker>/<emotion>/<file>)",
        "README.txt": "not an audio file",
    }


def test_folders_with_speaker_level_and_wrapper(tmp_path: Path) -> None:
    wav(tmp_path, "corpus/spk10/angry/a.wav", "corpus/spk2/happy/b.wav", "corpus/spk2/angry/c.wav")
    scan = scan_corpus(tmp_path)
    assert scan.format == "folders" and scan.has_speakers
    assert scan.speakers() == ["spk2", "spk10"]
    assert scan.speaker_counts() == {"spk2": 2, "spk10": 1}


def test_folders_wrapper_without_speakers(tmp_path: Path) -> None:
    wav(tmp_path, "mycorpus/angry/a.wav", "mycorpus/happy/b.wav")
    scan = scan_corpus(tmp_path)
    assert [u.speaker for u in scan.utterances] == [None, None]
    assert scan.label_counts() == {"happy": 1, "angry": 1}


def test_folders_too_deep_and_unknown_speaker_level(tmp_path: Path) -> None:
    wav(tmp_path, "x/y/angry/a.wav", "z/angry/b.wav", "angry/c.wav")
    scan = scan_corpus(tmp_path, format="folders")
    assert parsed(scan) == {"b.wav": ("angry", "z", "angry"), "c.wav": ("angry", None, "angry")}
    assert only_reason(CorpusScan("n", "f", tmp_path, [], scan.skipped)).startswith("folder too deep")


def test_folders_speaker_regex(tmp_path: Path) -> None:
    wav(tmp_path, "angry/spk3_angry_0.wav", "sad/spk12_sad_1.wav", "sad/anon.wav")
    scan = scan_corpus(tmp_path, format="folders", speaker_regex=r"^(?P<speaker>spk\d+)_")
    assert [u.speaker for u in scan.utterances] == ["spk3", "spk12"]
    assert scan.has_speakers
    assert only_reason(CorpusScan("n", "f", tmp_path, [], scan.skipped)) == (
        "file name does not match the speaker pattern"
    )
    with pytest.raises(CorpusError, match="named group"):
        scan_corpus(tmp_path, format="folders", speaker_regex=r"^spk\d+")
    with pytest.raises(CorpusError, match="Invalid speaker pattern"):
        scan_corpus(tmp_path, format="folders", speaker_regex=r"(?P<speaker>")
    with pytest.raises(CorpusError, match="does not take option"):
        scan_corpus(tmp_path, format="ravdess", speaker_regex=r"(?P<speaker>x)")


# --- CSV manifest ----------------------------------------------------------------------------

def test_csv_manifest_rows(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    wav(root, "audio/a.wav", "audio/b.flac", "audio/c.wav", "audio/d.wav", "audio/unlisted.wav")
    outside = wav(tmp_path, "outside.wav")[0]
    (root / "audio" / "notes.txt").write_text("x")
    os.symlink(outside, root / "audio" / "link.wav")
    rows = [
        "\ufeffPath,Label,Speaker",
        "audio/a.wav,Anger,s1",
        f"{root / 'audio' / 'c.wav'},ps,s2",
        "audio/d.wav,contempt,s1",
        "audio/missing.wav,sad,s1",
        "../outside.wav,sad,s1",
        f"{outside},sad,s1",
        "audio/link.wav,sad,s1",
        "audio/a.wav,happy,s1",
        "audio/notes.txt,sad,s1",
        ",sad,s1",
        "",
        "audio/b.flac,neutral",
    ]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    scan = scan_corpus(root, probe_durations=False)
    assert scan.format == "csv"
    assert parsed(scan) == {
        "a.wav": ("angry", "s1", "Anger"),
        "b.flac": ("neutral", None, "neutral"),
        "c.wav": ("surprised", "s2", "ps"),
    }
    assert all(u.path.parent == root / "audio" for u in scan.utterances)
    reasons = sorted((s.path.name, s.reason) for s in scan.skipped)
    assert reasons == sorted([
        ("d.wav", "unknown label 'contempt'"),
        ("missing.wav", "file not found"),
        ("outside.wav", "path escapes the corpus folder"),
        ("outside.wav", "path escapes the corpus folder"),
        ("link.wav", "path escapes the corpus folder"),
        ("a.wav", "listed more than once in the manifest"),
        ("notes.txt", "not an audio file"),
        ("manifest.csv", "row without a path"),
        ("unlisted.wav", "not listed in manifest.csv"),
    ])


def test_csv_manifest_choice(tmp_path: Path) -> None:
    wav(tmp_path, "a.wav", "b.wav")
    (tmp_path / "one.csv").write_text("path,label\na.wav,sad\nb.wav,happy\n")
    (tmp_path / "two.csv").write_text("path,label\na.wav,angry\nb.wav,happy\n")
    (tmp_path / "other.csv").write_text("file,emotion\na.wav,sad\n")
    with pytest.raises(CorpusError, match="Several CSV manifests"):
        scan_corpus(tmp_path)
    scan = scan_corpus(tmp_path, manifest="two.csv")
    assert [u.label for u in scan.utterances] == ["angry", "happy"]
    with pytest.raises(CorpusError, match="not a CSV manifest"):
        scan_corpus(tmp_path, format="csv", manifest="other.csv")


# --- audio problems, summary, detection ------------------------------------------------------

def test_unreadable_audio_is_skipped_with_the_audio_error(tmp_path: Path) -> None:
    wav(tmp_path, "angry/good.wav")
    (tmp_path / "angry" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 3)
    (tmp_path / "angry" / "empty.wav").write_bytes(b"")
    (tmp_path / "angry" / "text.mp3").write_text("this is not audio at all")
    scan = scan_corpus(tmp_path)
    assert [u.path.name for u in scan.utterances] == ["good.wav"]
    reasons = {s.path.name: s.reason for s in scan.skipped}
    assert set(reasons) == {"corrupt.wav", "empty.wav", "text.mp3"}
    assert "empty" in reasons["empty.wav"]
    assert all(r for r in reasons.values())
    unprobed = scan_corpus(tmp_path, probe_durations=False)
    assert len(unprobed.utterances) == 4 and unprobed.skipped == []
    assert all(u.duration == 0.0 for u in unprobed.utterances)


def test_summary_is_json_and_groups_reasons(tmp_path: Path) -> None:
    wav(tmp_path, "spk1/angry/a.wav", "spk1/sad/b.wav", "spk2/angry/c.wav", "spk2/grumpy/d.wav")
    for i in range(25):
        (tmp_path / "spk1" / f"note{i:02d}.txt").write_text("x")
    scan = scan_corpus(tmp_path, name="mine")
    summary = json.loads(json.dumps(scan.summary()))
    assert summary["name"] == "mine" and summary["format"] == "folders"
    assert summary["utterances"] == 3 and summary["skipped"] == 26
    assert summary["labels"] == {"sad": 1, "angry": 2}
    assert summary["speakers"] == {"spk1": 2, "spk2": 1}
    assert summary["total_duration"] == pytest.approx(0.15, abs=0.01)
    assert summary["min_duration"] == pytest.approx(0.05, abs=0.005)
    first, second = summary["skipped_reasons"]
    assert first["reason"] == "not an audio file" and first["count"] == 25
    assert len(first["examples"]) == 20 and first["examples"][0] == "spk1/note00.txt"
    assert second["count"] == 1
    assert [u.path for u in scan.utterances] == sorted(u.path for u in scan.utterances)
    assert {u.corpus for u in scan.utterances} == {"mine"}


def test_empty_scan_summary(tmp_path: Path) -> None:
    summary = CorpusScan("x", "folders", tmp_path).summary()
    assert summary["utterances"] == 0 and summary["mean_duration"] == 0.0
    assert CorpusScan("x", "folders", tmp_path).has_speakers is False


BUILDERS = {
    "ravdess": ["Actor_01/03-01-05-01-01-01-01.wav", "Actor_01/03-01-06-01-01-01-01.wav"],
    "crema-d": ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_SAD_HI.wav"],
    "tess": ["OAF_angry/OAF_back_angry.wav", "YAF_pleasant_surprised/YAF_back_ps.wav"],
    "emodb": ["wav/03a01Fa.wav", "wav/08b02Wb.wav"],
    "savee": ["AudioData/DC/sa01.wav", "AudioData/JE/a02.wav"],
    "folders": ["angry/x1.wav", "neutral/x2.wav", "happy/OAF_back_angry.wav"],
}


@pytest.mark.parametrize("fmt", [*BUILDERS, "iemocap", "csv"])
def test_detect_each_format(tmp_path: Path, fmt: str) -> None:
    layout(tmp_path, fmt, BUILDERS)
    if fmt not in ("iemocap", "csv"):
        (tmp_path / "README.md").write_text("not audio")
    assert detect_format(tmp_path) == fmt
    assert scan_corpus(tmp_path, probe_durations=False).format == fmt


def test_detection_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        detect_format(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(CorpusError, match="No audio files"):
        scan_corpus(tmp_path / "empty")
    wav(tmp_path / "odd", "stuff/recording1.wav", "stuff/recording2.wav")
    with pytest.raises(CorpusError, match="Could not recognise"):
        detect_format(tmp_path / "odd")
    with pytest.raises(CorpusError, match="known formats: " + ", ".join(FORMATS)):
        scan_corpus(tmp_path / "odd", format="xyz")
    assert scan_corpus(tmp_path / "odd", format="folders").utterances == []


def test_format_aliases(tmp_path: Path) -> None:
    wav(tmp_path, "1001_DFA_ANG_XX.wav")
    assert scan_corpus(tmp_path, format="CremaD").format == "crema-d"


# --- real corpora ----------------------------------------------------------------------------

requires_corpora = pytest.mark.skipif(not CORPORA.is_dir(), reason=f"real corpora not found at {CORPORA}")


@pytest.fixture(scope="module")
def ravdess_scan() -> CorpusScan:
    root = CORPORA / "ravdess"
    if not root.is_dir():
        pytest.skip(f"no RAVDESS at {root}")
    return scan_corpus(root)


@pytest.fixture(scope="module")
def tess_scan() -> CorpusScan:
    root = CORPORA / "tess"
    if not root.is_dir():
        pytest.skip(f"no TESS at {root}")
    return scan_corpus(root)


@pytest.mark.corpora
@requires_corpora
def test_real_ravdess(ravdess_scan: CorpusScan) -> None:
    scan = ravdess_scan
    assert scan.format == "ravdess" and detect_format(CORPORA / "ravdess") == "ravdess"
    assert len(scan.utterances) == 1440 and scan.skipped == []
    assert scan.speaker_counts() == {f"Actor_{i:02d}": 60 for i in range(1, 25)}
    counts = scan.label_counts()
    assert counts.pop("neutral") == 96
    assert set(counts.values()) == {192} and len(counts) == 7
    durations = [u.duration for u in scan.utterances]
    assert 2.85 <= min(durations) and max(durations) <= 5.35


@pytest.mark.corpora
@requires_corpora
def test_real_tess(tess_scan: CorpusScan) -> None:
    scan = tess_scan
    assert scan.format == "tess" and detect_format(CORPORA / "tess") == "tess"
    assert len(scan.utterances) == 2800 and scan.skipped == []
    assert scan.speaker_counts() == {"OAF": 1400, "YAF": 1400}
    assert scan.label_counts() == {
        label: 400 for label in ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    }
    assert {u.source_label for u in scan.utterances if u.label == "surprised"} == {"ps"}
    assert {u.source_label for u in scan.utterances if u.label == "fearful"} == {"fear"}
