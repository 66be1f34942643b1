"""nEMO (Polish): ``samples/{speaker}_{emotion}_{n}.ogg`` plus the release's ``data.tsv``.

The table has the columns file_id, emotion, raw_text, normalized_text, speaker_id, gender,
age; ``file_id`` names the original ``.wav`` (the files may be re-encoded), so rows are
matched to audio files by name stem. ``speaker_id`` carries leading spaces. Emotions are
words: anger, fear, happiness, neutral, sadness, surprised. Nine speakers in the release:
EB0 IC0 KD0 KS0 MK0 MP0 SM0 TP0 WR0.

Labels and speakers come from the table; the file name is a second opinion that must
agree with it, otherwise the file is skipped. A file the table does not list is read from
its name alone, and only when the name has the strict ``AB0_emotion_12`` shape with one of
the six emotion words. A folder named after an emotion (``anger/EB0_anger_1.wav``) must
agree too. A table whose first line is not nEMO's header is ignored (and
reported); a nEMO table whose body is not text, or that is far larger than the release's,
stops the scan with a CorpusError rather than import something the table contradicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from ..labels import canonical_label
from .base import (
    NOT_AUDIO,
    CorpusError,
    CorpusScan,
    Match,
    Skipped,
    build_scan,
    check_root,
    is_audio,
    list_files,
    match_fraction,
)

NAME = "nemo"
TABLE_NAME = "data.tsv"
EMOTIONS: dict[str, str] = {
    "anger": "angry",
    "fear": "fearful",
    "happiness": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "surprised": "surprised",
}
REQUIRED_COLUMNS = ("file_id", "emotion", "speaker_id")
MAX_TABLE_BYTES = 16 * 1024**2  # the release's table is about 0.5 MB
MAX_LINE_CHARS = 4096  # its longest line is a few hundred characters
_WRAPPER_LEVELS = 3  # how deep single wrapper folders of a zip are looked through for the table
_SHAPE = re.compile(r"^([A-Z]{2}\d)_([a-z]+)_(\d+)$")
_EXPECTED = "expected SPEAKER_emotion_n, e.g. EB0_anger_1"


class Row(NamedTuple):
    """One line of ``data.tsv``: its line number and the three fields the scan uses."""

    line: int
    file_id: str
    emotion: str
    speaker: str


@dataclass
class Table:
    """A read ``data.tsv``: rows by name stem, and what was wrong with individual lines."""

    path: Path
    rows: dict[str, Row] = field(default_factory=dict)  # stem -> first row naming it
    conflicts: dict[str, str] = field(default_factory=dict)  # stem -> why its rows cannot be used
    problems: list[Skipped] = field(default_factory=list)


def find_table(root: Path) -> Path | None:
    """``data.tsv`` at ``root`` or below single wrapper folders (``nemo/data.tsv`` in a zip)."""
    folder = root
    for _ in range(_WRAPPER_LEVELS + 1):
        candidate = folder / TABLE_NAME
        if candidate.is_file():
            return candidate
        try:
            subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
        except OSError:
            return None
        if len(subfolders) != 1:
            return None
        folder = subfolders[0]
    return None


def _header(path: Path) -> list[str] | str:
    """The table's lower-cased column names, or why the file is not a nEMO table."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(MAX_LINE_CHARS + 1)
    except OSError as exc:
        return f"cannot read {path.name} ({exc.strerror or exc})"
    if len(first) > MAX_LINE_CHARS:
        return f"{path.name} is not a nEMO table (its first line is longer than {MAX_LINE_CHARS} characters)"
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        return f"{path.name} is not a nEMO table (it is not UTF-8 text)"
    columns = [c.strip().lower() for c in text.rstrip("\r\n").split("\t")]
    if "\0" in text or not all(c in columns for c in REQUIRED_COLUMNS):
        return (
            f"{path.name} is not a nEMO table (its first line must name the tab-separated columns "
            f"{', '.join(REQUIRED_COLUMNS)})"
        )
    return columns


def read_table(path: Path) -> Table | str:
    """Read a nEMO ``data.tsv``, or say why it is not one (the caller reports and ignores it).

    Lines with too few columns, overlong lines and empty file ids are listed in
    :attr:`Table.problems`; a stem listed twice with different fields goes to
    :attr:`Table.conflicts`.

    Raises:
        CorpusError: the header is nEMO's but the file is too large or its body is not text.
    """
    columns = _header(path)
    if isinstance(columns, str):
        return columns
    size = path.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise CorpusError(
            f"{path.name} is {size / 1024**2:.0f} MB, far more than a nEMO table "
            f"(at most {MAX_TABLE_BYTES // 1024**2} MB); fix or remove it."
        )
    index = [columns.index(c) for c in REQUIRED_COLUMNS]
    table = Table(path)
    raw_lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(raw_lines[1:], start=2):
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            raise CorpusError(f"{path.name} line {number} is not UTF-8 text ({exc.reason}); fix or remove the file.") from exc
        if "\0" in line:
            raise CorpusError(f"{path.name} line {number} holds binary data; fix or remove the file.")
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            table.problems.append(Skipped(path, f"line {number} is longer than {MAX_LINE_CHARS} characters"))
            continue
        cells = line.split("\t")
        if len(cells) <= max(index):
            table.problems.append(Skipped(path, f"line {number} has {len(cells)} columns, not {len(columns)}"))
            continue
        file_id, emotion, speaker = (cells[i].strip() for i in index)
        stem = PurePosixPath(file_id.replace("\\", "/")).stem
        if not stem:
            table.problems.append(Skipped(path, f"line {number} has no file_id"))
            continue
        earlier = table.rows.setdefault(stem, Row(number, file_id, emotion, speaker))
        if (earlier.emotion, earlier.speaker) != (emotion, speaker):
            table.conflicts[stem] = f"{path.name} lists it twice with different fields (lines {earlier.line} and {number})"
    return table


def classify(path: Path) -> Match | str:
    """Label, speaker and emotion word from a nEMO file name alone, or why it is skipped."""
    found = _SHAPE.match(path.stem)
    if not found:
        return f"not a nEMO file name ({_EXPECTED})"
    speaker, word, _n = found.groups()
    if word not in EMOTIONS:
        return f"unknown emotion word {word!r}"
    return Match(EMOTIONS[word], speaker, word)


def check_row(path: Path, row: Row, table_name: str = TABLE_NAME) -> Match | str:
    """The table's label and speaker for ``path``, or why they cannot be used."""
    word = row.emotion.lower()
    if word not in EMOTIONS:
        return f"unknown emotion {row.emotion!r} in {table_name} (line {row.line})"
    if not row.speaker:
        return f"no speaker_id in {table_name} (line {row.line})"
    found = _SHAPE.match(path.stem)
    if not found:
        return f"the file name cannot be checked against {table_name} ({_EXPECTED})"
    speaker, name_word, _n = found.groups()
    if speaker != row.speaker:
        return f"speaker {speaker!r} in the file name disagrees with {table_name} ({row.speaker!r}, line {row.line})"
    if name_word != word:
        return f"emotion {name_word!r} in the file name disagrees with {table_name} ({row.emotion!r}, line {row.line})"
    return Match(EMOTIONS[word], row.speaker, word)


def detect(root: Path, sample: list[Path] | None = None) -> float:
    """Share of audio files listed in a nEMO ``data.tsv`` or named ``AB0_emotion_12``."""
    root = Path(root)
    files = list_files(root) if sample is None else sample
    path = find_table(root)
    try:
        table = read_table(path) if path is not None else None
    except CorpusError:
        table = None  # parse reports it; the names can still be judged
    stems = set(table.rows) if isinstance(table, Table) else set()
    return match_fraction(files, lambda p: p.stem in stems or not isinstance(classify(p), str))


def parse(root: Path, name: str, *, probe_durations: bool = True) -> CorpusScan:
    """Scan a nEMO folder (see the module docstring for how the table and names are used)."""
    root = check_root(Path(root))
    table_path = find_table(root)
    table = read_table(table_path) if table_path is not None else None
    skipped: list[Skipped] = []
    if isinstance(table, str):
        skipped.append(Skipped(table_path, f"{table}; labels were read from the file names"))
        table = None
    elif table is not None:
        skipped.extend(table.problems)
    matches: list[tuple[Path, Match]] = []
    seen: dict[str, Path] = {}
    for path in list_files(root):
        if path == table_path:
            continue  # used, or reported above as ignored
        if not is_audio(path):
            skipped.append(Skipped(path, NOT_AUDIO))
            continue
        stem = path.stem
        if stem in seen:
            skipped.append(Skipped(path, f"another file has the same name stem ({seen[stem].relative_to(root).as_posix()})"))
            continue
        seen[stem] = path
        if table is not None and stem in table.conflicts:
            result: Match | str = table.conflicts[stem]
        elif table is not None and stem in table.rows:
            result = check_row(path, table.rows[stem], table.path.name)
        else:
            result = classify(path)
            if isinstance(result, str) and table is not None:
                result = f"not in {table.path.name}, and {result}"
        folder = canonical_label(path.parent.name)
        if not isinstance(result, str) and folder is not None and folder != result.label:
            result = f"emotion {result.source_label!r} disagrees with folder {path.parent.name!r}"  # misfiled
        if isinstance(result, str):
            skipped.append(Skipped(path, result))
        else:
            matches.append((path, result))
    if table is not None:
        for stem, row in table.rows.items():
            if stem not in seen:
                where = table.path.parent / PurePosixPath(row.file_id.replace("\\", "/")).name
                skipped.append(Skipped(where, f"listed in {table.path.name} (line {row.line}) but the audio file is missing"))
    return build_scan(name, NAME, root, matches, skipped, probe_durations=probe_durations)
