"""Synthetic corpora, zips and storage isolation for the corpus tests."""

from __future__ import annotations

import io
import json
import stat
import warnings
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from devsupport.synth import speech_like, write_ogg, write_wav

# RAVDESS emotion codes used here and the labels they map to.
EMOTIONS = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry"}


def ravdess_folder(root: Path, *, actors: int = 2, statements: int = 2, seconds: float = 0.6) -> Path:
    """``root/Actor_NN/03-01-EE-01-SS-01-NN.wav``: actors × 4 emotions × statements files of about 1 s."""
    for actor in range(1, actors + 1):
        for code, label in EMOTIONS.items():
            for statement in range(1, statements + 1):
                name = f"03-01-{code}-01-{statement:02d}-01-{actor:02d}.wav"
                seed = actor * 100 + int(code) * 10 + statement
                write_wav(root / f"Actor_{actor:02d}" / name, speech_like(label, duration=seconds, seed=seed))
    return root


# nEMO's emotion words for the classes speech_like can make, and the labels they map to.
NEMO_EMOTIONS = {"anger": "angry", "sadness": "sad", "neutral": "neutral"}
NEMO_HEADER = "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"


def nemo_folder(root: Path, *, speakers: tuple[str, ...] = ("EB0", "WR0"), missing: str = "WR0_anger_9") -> Path:
    """``root/samples/{speaker}_{emotion}_{n}.ogg`` and ``root/data.tsv`` (padded speaker ids, ``.wav``
    file ids as the release writes them), plus a table row for ``missing``, which has no file."""
    rows = []
    for s, speaker in enumerate(speakers):
        for e, (word, label) in enumerate(NEMO_EMOTIONS.items()):
            stem = f"{speaker}_{word}_{e + 1}"
            write_ogg(root / "samples" / f"{stem}.ogg", speech_like(label, duration=0.5, seed=s * 10 + e))
            rows.append(f"{stem}.wav\t{word}\tZdanie.\tzdanie\t        {speaker}\tmale\t23\n")
    rows.append(f"{missing}.wav\tanger\tZdanie.\tzdanie\t        {missing[:3]}\tmale\t23\n")
    (root / "data.tsv").write_text(NEMO_HEADER + "".join(rows), encoding="utf-8")
    return root


def zip_bytes(folder: Path, *, prefix: str = "", extra: dict[str, bytes] | None = None) -> bytes:
    """Every file below ``folder`` (paths relative to it, under ``prefix``) plus ``extra`` entries."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, prefix + path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buf.getvalue()


def symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("Actor_01/03-01-05-01-01-01-01.wav", b"RIFF")
        link = zipfile.ZipInfo("Actor_01/03-01-04-01-01-01-01.wav")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return buf.getvalue()


def entries_zip(names: list[str], data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are one of the hostile cases
        for name in names:
            archive.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def upload(data: bytes, name: str = "corpus.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/zip")


def folder_post_data(folder: Path, *, top: str = "mycorpus") -> dict:
    """POST data of a folder upload as the page sends it: files, and their relative paths as JSON."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    paths = [f"{top}/{p.relative_to(folder).as_posix()}" for p in files]
    return {
        "files": [SimpleUploadedFile(p.name, p.read_bytes()) for p in files],
        "paths": SimpleUploadedFile("paths.json", json.dumps(paths).encode(), content_type="application/json"),
    }


def leftovers(settings) -> list[Path]:
    """Files or folders left in the staging area or under media/corpora."""
    found: list[Path] = []
    for base in (Path(settings.DATA_DIR) / "tmp", Path(settings.MEDIA_ROOT) / "corpora"):
        if base.exists():
            found.extend(base.iterdir())
    return found


@pytest.fixture
def storage(settings, tmp_path):
    """A private DATA_DIR and MEDIA_ROOT for the test, so leftovers can be checked exactly."""
    settings.DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = tmp_path / "data" / "media"
    settings.DATA_DIR.mkdir()
    return settings
