"""nEMO: labels from data.tsv checked against the file names, the name-only fallback, a
malformed table, detection among every format, and the real corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.helpers import CORPORA, layout, ogg, parsed, wav
from training.engine.corpora import (
    CorpusError,
    CorpusScan,
    detect_format,
    detection_scores,
    scan_corpus,
)
from training.engine.corpora.nemo import MAX_LINE_CHARS, MAX_TABLE_BYTES

HEADER = "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage"


def table(root: Path, *rows: tuple[str, str, str], header: str = HEADER, name: str = "data.tsv") -> Path:
    """A data.tsv as the release writes it: ``(file_id, emotion, speaker)`` rows, padded speaker ids."""
    lines = [header] + [f"{f}\t{e}\tZdanie.\tzdanie\t        {s}\tfemale\t27" for f, e, s in rows]
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reasons(scan: CorpusScan, root: Path) -> dict[str, str]:
    return {s.path.relative_to(root).as_posix(): s.reason for s in scan.skipped}


# --- the table -------------------------------------------------------------------------------

def test_table_gives_labels_and_speakers_matched_by_stem(tmp_path: Path) -> None:
    root = tmp_path / "nemo"
    ogg(root, "samples/EB0_anger_1.ogg", "samples/WR0_surprised_64.ogg", "samples/KS0_happiness_2.ogg")
    wav(root, "samples/MP0_fear_3.wav", "samples/IC0_sadness_4.wav", "samples/TP0_neutral_5.wav")
    table(
        root,
        ("WR0_surprised_64.wav", "surprised", "WR0"),
        ("EB0_anger_1.wav", "anger", "EB0"),
        ("KS0_happiness_2.wav", "happiness", "KS0"),
        ("MP0_fear_3.wav", "fear", "MP0"),
        ("IC0_sadness_4.wav", "sadness", "IC0"),
        ("TP0_neutral_5.wav", "neutral", "TP0"),
    )
    (root / "README.md").write_text("licence")
    scan = scan_corpus(root)
    assert scan.format == "nemo" and scan.name == "nemo"
    assert parsed(scan) == {
        "EB0_anger_1.ogg": ("angry", "EB0", "anger"),
        "WR0_surprised_64.ogg": ("surprised", "WR0", "surprised"),
        "KS0_happiness_2.ogg": ("happy", "KS0", "happiness"),
        "MP0_fear_3.wav": ("fearful", "MP0", "fear"),
        "IC0_sadness_4.wav": ("sad", "IC0", "sadness"),
        "TP0_neutral_5.wav": ("neutral", "TP0", "neutral"),
    }
    assert reasons(scan, root) == {"README.md": "not an audio file"}  # data.tsv itself is not reported
    assert all(0.04 < u.duration < 0.1 for u in scan.utterances)  # the Ogg/Opus files decode


def test_file_name_must_agree_with_the_table(tmp_path: Path) -> None:
    wav(
        tmp_path,
        "samples/EB0_anger_1.wav",
        "samples/EB0_anger_2.wav",
        "samples/IC0_fear_3.flac",
        "samples/KD0_disgust_4.wav",
        "samples/recording5.wav",
        "samples/SM0_neutral_6.wav",
    )
    table(
        tmp_path,
        ("EB0_anger_1.wav", "fear", "EB0"),  # the name says anger
        ("EB0_anger_2.wav", "anger", "IC0"),  # the name says EB0
        ("IC0_fear_3.wav", "fear", "IC0"),  # .flac matched by stem: fine
        ("KD0_disgust_4.wav", "disgust", "KD0"),  # not a nEMO emotion: never guessed
        ("recording5.wav", "anger", "MK0"),
        ("SM0_neutral_6.wav", "neutral", ""),
    )
    scan = scan_corpus(tmp_path)
    assert parsed(scan) == {"IC0_fear_3.flac": ("fearful", "IC0", "fear")}
    assert reasons(scan, tmp_path) == {
        "samples/EB0_anger_1.wav": "emotion 'anger' in the file name disagrees with data.tsv ('fear', line 2)",
        "samples/EB0_anger_2.wav": "speaker 'EB0' in the file name disagrees with data.tsv ('IC0', line 3)",
        "samples/KD0_disgust_4.wav": "unknown emotion 'disgust' in data.tsv (line 5)",
        "samples/recording5.wav": "the file name cannot be checked against data.tsv (expected SPEAKER_emotion_n, e.g. EB0_anger_1)",
        "samples/SM0_neutral_6.wav": "no speaker_id in data.tsv (line 7)",
    }


def test_missing_files_duplicate_rows_and_duplicate_stems(tmp_path: Path) -> None:
    wav(tmp_path, "samples/EB0_anger_1.wav", "samples/EB0_anger_1.ogg", "samples/KS0_fear_2.wav", "samples/KS0_fear_3.wav")
    table(
        tmp_path,
        ("EB0_anger_1.wav", "anger", "EB0"),
        ("KS0_fear_2.wav", "fear", "KS0"),
        ("KS0_fear_2.wav", "fear", "KS0"),  # repeated as it was: harmless
        ("KS0_fear_3.wav", "fear", "KS0"),
        ("KS0_fear_3.wav", "sadness", "KS0"),  # repeated differently: which is right is unknown
        ("WR0_anger_9.wav", "anger", "WR0"),
        ("WR0_anger_10.wav", "anger", "WR0"),
    )
    scan = scan_corpus(tmp_path, probe_durations=False)
    assert sorted(parsed(scan)) == ["EB0_anger_1.ogg", "KS0_fear_2.wav"]
    assert reasons(scan, tmp_path) == {
        "samples/EB0_anger_1.wav": "another file has the same name stem (samples/EB0_anger_1.ogg)",
        "samples/KS0_fear_3.wav": "data.tsv lists it twice with different fields (lines 5 and 6)",
        "WR0_anger_9.wav": "listed in data.tsv (line 7) but the audio file is missing",
        "WR0_anger_10.wav": "listed in data.tsv (line 8) but the audio file is missing",
    }


def test_files_missing_from_the_table_fall_back_to_a_strict_name(tmp_path: Path) -> None:
    wav(
        tmp_path,
        "samples/EB0_anger_1.wav",
        "samples/MK0_sadness_12.wav",
        "samples/MK0_boredom_13.wav",
        "samples/MK0_sad_14.wav",
        "samples/mk0_anger_15.wav",
        "samples/MK0_Anger_16.wav",
        "samples/MK0_anger.wav",
    )
    table(tmp_path, ("EB0_anger_1.wav", "anger", "EB0"))
    scan = scan_corpus(tmp_path, format="nemo", probe_durations=False)
    assert parsed(scan) == {"EB0_anger_1.wav": ("angry", "EB0", "anger"), "MK0_sadness_12.wav": ("sad", "MK0", "sadness")}
    shape = "not a nEMO file name (expected SPEAKER_emotion_n, e.g. EB0_anger_1)"
    assert reasons(scan, tmp_path) == {
        "samples/MK0_boredom_13.wav": "not in data.tsv, and unknown emotion word 'boredom'",
        "samples/MK0_sad_14.wav": "not in data.tsv, and unknown emotion word 'sad'",
        "samples/mk0_anger_15.wav": f"not in data.tsv, and {shape}",
        "samples/MK0_Anger_16.wav": f"not in data.tsv, and {shape}",
        "samples/MK0_anger.wav": f"not in data.tsv, and {shape}",
    }


def test_without_a_table_the_names_are_read(tmp_path: Path) -> None:
    wav(tmp_path, "nemo/samples/EB0_happiness_1.wav", "nemo/samples/SM0_surprised_2.wav", "nemo/samples/SM0_joy_3.wav")
    scan = scan_corpus(tmp_path, probe_durations=False)
    assert scan.format == "nemo"
    assert parsed(scan) == {
        "EB0_happiness_1.wav": ("happy", "EB0", "happiness"),
        "SM0_surprised_2.wav": ("surprised", "SM0", "surprised"),
    }
    assert reasons(scan, tmp_path) == {"nemo/samples/SM0_joy_3.wav": "unknown emotion word 'joy'"}


def test_the_table_is_found_inside_a_zip_wrapper_folder(tmp_path: Path) -> None:
    wav(tmp_path, "nEMO-main/samples/EB0_anger_1.wav", "nEMO-main/samples/EB0_fear_2.wav")
    table(tmp_path / "nEMO-main", ("EB0_anger_1.wav", "anger", "EB0"), ("EB0_fear_2.wav", "anger", "EB0"))
    scan = scan_corpus(tmp_path, probe_durations=False)
    assert scan.format == "nemo" and sorted(parsed(scan)) == ["EB0_anger_1.wav"]
    assert "disagrees with data.tsv" in reasons(scan, tmp_path)["nEMO-main/samples/EB0_fear_2.wav"]


# --- a malformed table -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"path\tlabel\tspeaker\nEB0_anger_1.wav\tfear\tEB0\n", "its first line must name the tab-separated columns"),
        (b"file_id,emotion,speaker_id\nEB0_anger_1.wav,fear,EB0\n", "its first line must name the tab-separated columns"),
        (b"\xff\xfe" + bytes(range(128, 256)) * 8 + b"\n", "it is not UTF-8 text"),
        (b"file_id\temotion\tspeaker_id\0\n", "its first line must name"),
        (b"x" * (MAX_LINE_CHARS + 10), f"its first line is longer than {MAX_LINE_CHARS} characters"),
        (b"", "its first line must name"),
    ],
)
def test_a_table_that_is_not_nemos_is_ignored_with_a_reason(tmp_path: Path, content: bytes, why: str) -> None:
    wav(tmp_path, "samples/EB0_anger_1.wav")
    (tmp_path / "data.tsv").write_bytes(content)
    scan = scan_corpus(tmp_path, probe_durations=False)
    assert scan.format == "nemo"
    assert parsed(scan) == {"EB0_anger_1.wav": ("angry", "EB0", "anger")}  # the name, not the table's "fear"
    reason = reasons(scan, tmp_path)["data.tsv"]
    assert reason.startswith("data.tsv is not a nEMO table (") and why in reason
    assert reason.endswith("; labels were read from the file names")


def test_bad_lines_are_reported_and_the_rest_is_used(tmp_path: Path) -> None:
    wav(tmp_path, "samples/EB0_anger_1.wav", "samples/EB0_anger_2.wav")
    path = table(tmp_path, ("EB0_anger_1.wav", "anger", "EB0"))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("EB0_anger_2.wav\tfear\n")  # too few columns: the file falls back to its name
        handle.write("\t".join(["EB0_fear_3.wav", "fear", "x" * MAX_LINE_CHARS, "", "EB0", "", ""]) + "\n")
        handle.write("\tanger\t\t\tEB0\t\t\n\n   \n")
    scan = scan_corpus(tmp_path, probe_durations=False)
    assert sorted(parsed(scan)) == ["EB0_anger_1.wav", "EB0_anger_2.wav"]
    assert sorted(s.reason for s in scan.skipped) == [
        "line 3 has 2 columns, not 7",
        f"line 4 is longer than {MAX_LINE_CHARS} characters",
        "line 5 has no file_id",
    ]
    assert {s.path for s in scan.skipped} == {path}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"EB0_anger_1.wav\tanger\t\xff\xfe\xfa\t\tEB0\t\t\n", "data.tsv line 2 is not UTF-8 text"),
        (b"EB0_anger_1.wav\tanger\t\0\0\0\t\tEB0\t\t\n", "data.tsv line 2 holds binary data"),
    ],
)
def test_a_nemo_table_with_a_corrupt_body_stops_the_scan(tmp_path: Path, body: bytes, message: str) -> None:
    wav(tmp_path, "samples/EB0_anger_1.wav")
    (tmp_path / "data.tsv").write_bytes(HEADER.encode() + b"\n" + body)
    assert detect_format(tmp_path) == "nemo"  # the names still say nEMO
    with pytest.raises(CorpusError, match=message):
        scan_corpus(tmp_path)


def test_an_oversized_nemo_table_stops_the_scan(tmp_path: Path) -> None:
    wav(tmp_path, "samples/EB0_anger_1.wav")
    with (tmp_path / "data.tsv").open("wb") as handle:
        handle.write(HEADER.encode() + b"\n")
        handle.truncate(MAX_TABLE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(CorpusError, match=r"data.tsv is 16 MB, far more than a nEMO table"):
        scan_corpus(tmp_path, format="nemo")


# --- detection among every format ------------------------------------------------------------

OTHERS = {
    "ravdess": ["Actor_01/03-01-05-01-01-01-01.wav", "Actor_01/03-01-06-01-01-01-01.wav"],
    "crema-d": ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_SAD_HI.wav"],
    "tess": ["OAF_angry/OAF_back_angry.wav", "YAF_fear/YAF_neutral_fear.wav"],
    "emodb": ["wav/03a01Fa.wav", "wav/08b02Wb.wav"],
    "savee": ["AudioData/DC/sa01.wav", "AudioData/JE/a02.wav"],
    # Folder corpora with speaker and emotion in the name, even nEMO's emotion words.
    "folders": ["anger/spk1_anger_1.wav", "sadness/EB_sadness_2.wav", "fear/EB00_fear_3.wav"],
}


@pytest.mark.parametrize("fmt", [*OTHERS, "iemocap", "csv"])
def test_nemo_does_not_claim_other_corpora_even_beside_a_nemo_table(tmp_path: Path, fmt: str) -> None:
    layout(tmp_path, fmt, OTHERS)
    assert detection_scores(tmp_path)["nemo"] == 0.0
    table(tmp_path, ("EB0_anger_1.wav", "anger", "EB0"))  # a stray nEMO table lists none of these files
    assert detection_scores(tmp_path)["nemo"] == 0.0
    assert detect_format(tmp_path) == fmt


@pytest.mark.parametrize("with_table", [True, False])
def test_only_nemo_claims_a_nemo_corpus(tmp_path: Path, with_table: bool) -> None:
    ogg(tmp_path, "samples/EB0_anger_1.ogg", "samples/KD0_neutral_2.ogg", "samples/TP0_surprised_3.ogg")
    if with_table:
        table(tmp_path, ("EB0_anger_1.wav", "anger", "EB0"), ("KD0_neutral_2.wav", "neutral", "KD0"))
    scores = detection_scores(tmp_path)
    assert scores.pop("nemo") == 1.0 and set(scores.values()) == {0.0}
    assert detect_format(tmp_path) == "nemo"


def test_table_listed_files_count_for_detection_whatever_their_names(tmp_path: Path) -> None:
    wav(tmp_path, "audio/clip1.wav", "audio/clip2.wav")
    assert detection_scores(tmp_path)["nemo"] == 0.0
    table(tmp_path, ("clip1.wav", "anger", "EB0"), ("clip2.wav", "fear", "EB0"))
    assert detect_format(tmp_path) == "nemo"
    scan = scan_corpus(tmp_path, probe_durations=False)
    assert scan.utterances == [] and len(scan.skipped) == 2  # listed, but the names cannot be checked


def test_emotion_folders_of_nemo_files_read_as_nemo_and_must_agree(tmp_path: Path) -> None:
    wav(tmp_path, "anger/EB0_anger_1.wav", "Fear/EB0_fear_2.wav", "fear/EB0_anger_3.wav", "speaker1/EB0_sadness_4.wav")
    assert detection_scores(tmp_path)["folders"] == 0.75
    scan = scan_corpus(tmp_path, probe_durations=False)
    assert scan.format == "nemo"  # ranks before folders; its names carry speakers too
    assert sorted(parsed(scan)) == ["EB0_anger_1.wav", "EB0_fear_2.wav", "EB0_sadness_4.wav"]
    assert reasons(scan, tmp_path) == {"fear/EB0_anger_3.wav": "emotion 'anger' disagrees with folder 'fear'"}


# --- the real corpus -------------------------------------------------------------------------

@pytest.mark.corpora
@pytest.mark.skipif(not (CORPORA / "nemo").is_dir(), reason=f"no nEMO at {CORPORA / 'nemo'}")
def test_real_nemo() -> None:
    root = CORPORA / "nemo"
    assert detect_format(root) == "nemo"
    scan = scan_corpus(root)
    assert scan.format == "nemo"
    assert len(scan.utterances) == 4481 and scan.skipped == []
    assert scan.speaker_counts() == {
        "EB0": 539, "IC0": 540, "KD0": 540, "KS0": 540, "MK0": 450, "MP0": 256, "SM0": 538, "TP0": 539, "WR0": 539,
    }
    by_word: dict[str, int] = {}
    for u in scan.utterances:
        by_word[u.source_label] = by_word.get(u.source_label, 0) + 1
    assert by_word == {"anger": 749, "fear": 736, "happiness": 749, "neutral": 809, "sadness": 769, "surprised": 669}
    assert scan.label_counts() == {"neutral": 809, "happy": 749, "sad": 769, "angry": 749, "fearful": 736, "surprised": 669}
    durations = [u.duration for u in scan.utterances]
    assert 0.8 <= min(durations) and max(durations) <= 5.8
