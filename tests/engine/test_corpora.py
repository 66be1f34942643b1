"""Corpus formats: naming conventions, skipped files with reasons, detection, real corpora."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.synth import write_wav
from training.engine.corpora import (
    FORMATS,
    CorpusError,
    CorpusScan,
    detect_format,
    scan_corpus,
)

TINY = (0.1 * np.sin(np.linspace(0, 200, 800))).astype(np.float32)  # 0.05 s at 16 kHz


def wav(root: Path, *relative: str) -> list[Path]:
    """Write a 0.05 s WAV at each relative path."""
    return [write_wav(root / rel, TINY) for rel in relative]


def only_reason(scan: CorpusScan) -> str:
    assert scan.utterances == [], [u.path.name for u in scan.utterances]
    assert len(scan.skipped) == 1
    return scan.skipped[0].reason


def parsed(scan: CorpusScan) -> dict[str, tuple[str, str | None, str]]:
    """file name -> (label, speaker, source label)"""
    return {u.path.name: (u.label, u.speaker, u.source_label) for u in scan.utterances}


# --- RAVDESS ---------------------------------------------------------------------------------

def test_ravdess_every_emotion_code(tmp_path: Path) -> None:
    names = [f"Actor_07/03-01-{e:02d}-01-02-01-07.wav" for e in range(1, 9)]
    wav(tmp_path, *names, "Actor_12/03-02-05-02-01-02-12.wav", "Actor_12/01-01-03-02-01-02-12.mp4")
    scan = scan_corpus(tmp_path, format="ravdess")
    assert scan.skipped == []
    labels = [u.label for u in scan.utterances if u.speaker == "Actor_07"]
    assert labels == ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    song = parsed(scan)["03-02-05-02-01-02-12.wav"]
    assert song == ("angry", "Actor_12", "05")  # song (vocal channel 02) is kept
    assert parsed(scan)["01-01-03-02-01-02-12.mp4"][0] == "happy"
    assert all(abs(u.duration - 0.05) < 0.01 and u.corpus == tmp_path.name for u in scan.utterances)


@pytest.mark.parametrize(
    ("stem", "reason"),
    [
        ("03-01-09-01-01-01-01", "unknown emotion code '09'"),
        ("03-01-00-01-01-01-01", "unknown emotion code '00'"),
        ("04-01-03-01-01-01-01", "unknown modality code '04'"),
        ("03-03-03-01-01-01-01", "unknown vocal channel code '03'"),
        ("03-01-03-03-01-01-01", "unknown intensity code '03'"),
        ("03-01-03-01-03-01-01", "unknown statement code '03'"),
        ("03-01-03-01-01-03-01", "unknown repetition code '03'"),
        ("03-01-03-01-01-01-00", "unknown actor code '00'"),
        ("03-01-01-02-01-01-01", "neutral has no strong intensity (02) in RAVDESS"),
        ("03-01-03-01-01-01", "not a RAVDESS file name (expected MM-VC-EE-II-SS-RR-AA)"),
        ("03-01-3-01-01-01-01", "not a RAVDESS file name (expected MM-VC-EE-II-SS-RR-AA)"),
    ],
)
def test_ravdess_invalid_fields_are_skipped(tmp_path: Path, stem: str, reason: str) -> None:
    wav(tmp_path, f"{stem}.wav")
    assert only_reason(scan_corpus(tmp_path, format="ravdess")) == reason


def test_ravdess_actor_folder_must_agree(tmp_path: Path) -> None:
    wav(tmp_path, "Actor_02/03-01-03-01-01-01-01.wav")
    assert "disagrees with folder 'Actor_02'" in only_reason(scan_corpus(tmp_path, format="ravdess"))


# --- CREMA-D ---------------------------------------------------------------------------------

def test_crema_d_valid_names(tmp_path: Path) -> None:
    wav(
        tmp_path,
        "AudioWAV/1001_DFA_ANG_XX.wav",
        "AudioWAV/1091_IEO_HAP_HI.wav",
        "AudioWAV/1002_TIE_NEU_X.wav",
        "AudioWAV/1003_wsi_sad_lo.wav",
        "AudioWAV/1004_ITS_FEA_MD.wav",
        "AudioWAV/1005_MTI_DIS_XX.wav",
    )
    scan = scan_corpus(tmp_path)
    assert scan.format == "crema-d" and scan.skipped == []
    assert parsed(scan)["1001_DFA_ANG_XX.wav"] == ("angry", "1001", "ANG")
    assert parsed(scan)["1003_wsi_sad_lo.wav"] == ("sad", "1003", "SAD")
    assert [u.label for u in scan.utterances] == ["angry", "neutral", "sad", "fearful", "disgust", "happy"]


@pytest.mark.parametrize(
    ("stem", "reason"),
    [
        ("1000_DFA_ANG_XX", "unknown actor id '1000'"),
        ("1092_DFA_ANG_XX", "unknown actor id '1092'"),
        ("1001_ABC_ANG_XX", "unknown sentence code 'ABC'"),
        ("1001_DFA_CAL_XX", "unknown emotion code 'CAL'"),
        ("1001_DFA_ANG_ZZ", "unknown intensity code 'ZZ'"),
        ("1001_DFA_ANG", "not a CREMA-D file name (expected 1001_DFA_ANG_XX)"),
    ],
)
def test_crema_d_unknown_codes(tmp_path: Path, stem: str, reason: str) -> None:
    wav(tmp_path, f"{stem}.wav")
    assert only_reason(scan_corpus(tmp_path, format="crema-d")) == reason


# --- TESS ------------------------------------------------------------------------------------

def test_tess_valid_names_and_folder_quirks(tmp_path: Path) -> None:
    wav(
        tmp_path,
        "OAF_angry/OAF_back_angry.wav",
        "YAF_pleasant_surprised/YAF_bar_ps.wav",
        "OAF_Fear/OAF_dog_Fear.wav",
        "YAF_fear/YAF_near_fear.wav",
        "OAF_Pleasant_surprise/OAF_chair_ps.wav",
        "loose/yaf_week_neutral.wav",
        "OAF_disgust/OAF_bath_disgust.wav",
        "YAF_happy/YAF_base_happy.wav",
        "YAF_sad/YAF_base_sad.wav",
    )
    scan = scan_corpus(tmp_path)
    assert scan.format == "tess" and scan.skipped == []
    got = parsed(scan)
    assert got["YAF_bar_ps.wav"] == ("surprised", "YAF", "ps")
    assert got["OAF_dog_Fear.wav"] == ("fearful", "OAF", "Fear")
    assert got["yaf_week_neutral.wav"] == ("neutral", "YAF", "neutral")
    assert scan.speakers() == ["OAF", "YAF"]


@pytest.mark.parametrize(
    ("rel", "reason"),
    [
        ("OAF_happy/OAF_back_sad.wav", "emotion code 'sad' disagrees with folder 'OAF_happy'"),
        ("angry/OAF_back_sad.wav", "emotion code 'sad' disagrees with folder 'angry'"),
        ("YAF_angry/OAF_back_angry.wav", "speaker 'OAF' disagrees with folder 'YAF_angry'"),
        ("OAF_back_calm.wav", "unknown emotion code 'calm'"),
        ("OAF_back_surprised.wav", "unknown emotion code 'surprised'"),
        ("XAF_back_angry.wav", "unknown speaker 'XAF'"),
        ("OAF-back-angry.wav", "not a TESS file name (expected SPK_word_emotion)"),
    ],
)
def test_tess_mismatches_and_unknown_codes(tmp_path: Path, rel: str, reason: str) -> None:
    wav(tmp_path, rel)
    assert only_reason(scan_corpus(tmp_path, format="tess")) == reason


# --- Emo-DB ----------------------------------------------------------------------------------

def test_emodb_every_emotion_letter(tmp_path: Path) -> None:
    letters = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
    wav(tmp_path, *(f"wav/03a01{x}a.wav" for x in letters), "wav/16b10Nc.wav")
    (tmp_path / "erklaerung.txt").write_text("docs")
    scan = scan_corpus(tmp_path)
    assert scan.format == "emodb"
    assert {u.source_label: u.label for u in scan.utterances} == letters
    assert parsed(scan)["16b10Nc.wav"] == ("neutral", "16", "N")
    assert [(s.path.name, s.reason) for s in scan.skipped] == [("erklaerung.txt", "not an audio file")]


@pytest.mark.parametrize(
    ("stem", "reason"),
    [
        ("05a01Fa", "unknown speaker '05'"),
        ("03a03Fa", "unknown text code 'a03'"),
        ("03b05Fa", "unknown text code 'b05'"),
        ("03a01Xa", "unknown emotion code 'X'"),
        ("03a01fa", "not an Emo-DB file name (expected 03a01Fa)"),
        ("03a01F", "not an Emo-DB file name (expected 03a01Fa)"),
    ],
)
def test_emodb_unknown_codes(tmp_path: Path, stem: str, reason: str) -> None:
    wav(tmp_path, f"wav/{stem}.wav")
    assert only_reason(scan_corpus(tmp_path, format="emodb")) == reason


# --- SAVEE -----------------------------------------------------------------------------------

def test_savee_folders_and_flat_names(tmp_path: Path) -> None:
    wav(
        tmp_path,
        "AudioData/DC/a01.wav",
        "AudioData/JE/sa03.wav",
        "AudioData/JK/su12.wav",
        "AudioData/KL/n30.wav",
        "AudioData/KL/h02.wav",
        "flat/DC_d01.wav",
        "flat/je_f02.wav",
    )
    scan = scan_corpus(tmp_path)
    assert scan.format == "savee" and scan.skipped == []
    got = parsed(scan)
    assert got["a01.wav"] == ("angry", "DC", "a")
    assert got["sa03.wav"] == ("sad", "JE", "sa")
    assert got["su12.wav"] == ("surprised", "JK", "su")
    assert got["n30.wav"] == ("neutral", "KL", "n")
    assert got["DC_d01.wav"] == ("disgust", "DC", "d")
    assert got["je_f02.wav"] == ("fearful", "JE", "f")


@pytest.mark.parametrize(
    ("rel", "reason"),
    [
        ("DC/s01.wav", "unknown emotion code 's'"),
        ("DC/sx01.wav", "unknown emotion code 'sx'"),
        ("DC/sad01.wav", "unknown emotion code 'sad'"),
        ("XX_a01.wav", "unknown speaker 'XX'"),
        ("other/a01.wav", "no speaker: expected a DC/JE/JK/KL folder or a speaker prefix, found folder 'other'"),
        ("DC/a1.wav", "not a SAVEE file name (expected sa01 in a speaker folder, or DC_sa01)"),
    ],
)
def test_savee_never_guesses(tmp_path: Path, rel: str, reason: str) -> None:
    wav(tmp_path, rel)
    assert only_reason(scan_corpus(tmp_path, format="savee")) == reason


# --- IEMOCAP ---------------------------------------------------------------------------------

def _iemocap(root: Path) -> Path:
    ev = root / "Session1" / "dialog" / "EmoEvaluation"
    ev.mkdir(parents=True)
    (ev / "Ses01F_impro01.txt").write_text(
        "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
        "C-E2:\tNeutral;\t()\n"
        "[10.0 - 11.5]\tSes01F_impro01_M001\tfru\t[2.0, 3.0, 3.0]\n"
        "[12.0 - 13.0]\tSes01F_impro01_F002\txxx\t[2.0, 3.0, 3.0]\n"
        "[14.0 - 15.0]\tSes01F_impro01_M003\toth\t[2.0, 3.0, 3.0]\n"
        "[16.0 - 17.0]\tSes01F_impro01_F004\tang\t[2.0, 3.0, 3.0]\n"
        "[18.0 - 19.0]\tSes01F_impro01_F005\tzzz\t[2.0, 3.0, 3.0]\n"
    )
    # Annotator sub-folders hold other opinions and must not be read.
    (ev / "Categorical").mkdir()
    (ev / "Categorical" / "Ses01F_impro01_e1_cat.txt").write_text(
        "[6.2901 - 8.2357]\tSes01F_impro01_F000\tang\t[1, 1, 1]\n"
    )
    ev2 = root / "Session2" / "dialog" / "EmoEvaluation"
    ev2.mkdir(parents=True)
    (ev2 / "Ses02M_script01_1.txt").write_text(
        "[1.0 - 2.0]\tSes02M_script01_1_F010\texc\t[4.0, 4.0, 3.0]\n"
        "[3.0 - 4.0]\tSes02M_script01_1_M011\thap\t[4.0, 4.0, 3.0]\n"
    )
    wav(
        root,
        *(f"Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_{u}.wav" for u in ("F000", "M001", "F002", "M003", "F005", "M099")),
        "Session2/sentences/wav/Ses02M_script01_1/Ses02M_script01_1_F010.wav",
        "Session2/sentences/wav/Ses02M_script01_1/Ses02M_script01_1_M011.wav",
        "Session1/dialog/wav/Ses01F_impro01.wav",  # whole dialog: not part of the corpus
    )
    return root


def test_iemocap_labels_speakers_and_skips(tmp_path: Path) -> None:
    scan = scan_corpus(_iemocap(tmp_path / "IEMOCAP_full_release"))
    assert scan.format == "iemocap" and scan.name == "IEMOCAP_full_release"
    assert parsed(scan) == {
        "Ses01F_impro01_F000.wav": ("neutral", "Ses01F", "neu"),
        "Ses01F_impro01_M001.wav": ("frustrated", "Ses01M", "fru"),
        "Ses02M_script01_1_F010.wav": ("excited", "Ses02F", "exc"),
        "Ses02M_script01_1_M011.wav": ("happy", "Ses02M", "hap"),
    }
    reasons = {s.path.name: s.reason for s in scan.skipped}
    assert reasons == {
        "Ses01F_impro01_F002.wav": "no agreed label ('xxx')",
        "Ses01F_impro01_M003.wav": "no agreed label ('oth')",
        "Ses01F_impro01_F004.wav": "labelled in EmoEvaluation but the audio file is missing",
        "Ses01F_impro01_F005.wav": "unknown emotion code 'zzz'",
        "Ses01F_impro01_M099.wav": "no label in EmoEvaluation",
    }


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
    if fmt == "iemocap":
        _iemocap(tmp_path)
    elif fmt == "csv":
        wav(tmp_path, "angry/1.wav", "Actor_01/03-01-05-01-01-01-01.wav")
        (tmp_path / "labels.csv").write_text("path,label\nangry/1.wav,angry\n")
    else:
        wav(tmp_path, *BUILDERS[fmt])
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

CORPORA = Path(os.environ.get("SER_CORPORA_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora")
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
