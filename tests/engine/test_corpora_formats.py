"""Corpus formats: the naming conventions of RAVDESS, CREMA-D, TESS, Emo-DB, SAVEE and IEMOCAP,
and the reasons files are skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.helpers import _iemocap, only_reason, parsed, wav
from training.engine.corpora import scan_corpus

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
