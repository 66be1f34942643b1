"""CSV manifest: a ``*.csv`` at the corpus root with the header ``path,label[,speaker]``.

Paths are relative to the CSV's folder, or absolute; either way they must stay inside the
corpus folder (``../`` tricks and symlinks pointing outside are rejected). Labels go
through :func:`canonical_label`. Every bad row becomes a :class:`Skipped` with its reason,
and audio files in the folder that the manifest does not list are reported too.
"""

from __future__ import annotations

import csv
from pathlib import Path

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
)

NAME = "csv"
REQUIRED_COLUMNS = ("path", "label")
PREFERRED_NAMES = ("manifest.csv", "metadata.csv", "labels.csv")


def _columns(path: Path) -> list[str] | None:
    """Lower-cased header of a CSV file, or None when it cannot be read as text."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return [c.strip().lower() for c in header] if header else None


def is_manifest(path: Path) -> bool:
    """True for a CSV file whose header has ``path`` and ``label`` columns."""
    columns = _columns(path) if path.suffix.lower() == ".csv" and path.is_file() else None
    return columns is not None and all(c in columns for c in REQUIRED_COLUMNS)


def find_manifest(root: Path, manifest: str | None = None) -> Path:
    """The manifest to use: ``manifest`` if given, else the only manifest-shaped CSV at the
    root (a conventional name breaks ties). Raises CorpusError otherwise."""
    if manifest:
        path = Path(manifest) if Path(manifest).is_absolute() else root / manifest
        if not is_manifest(path):
            raise CorpusError(f"{manifest!r} is not a CSV manifest with columns path,label[,speaker].")
        return path
    candidates = sorted(p for p in root.glob("*") if not p.name.startswith(".") and is_manifest(p))
    if not candidates:
        raise CorpusError(f"No CSV manifest with columns path,label[,speaker] at the top of {root}.")
    if len(candidates) > 1:
        preferred = [p for p in candidates if p.name.lower() in PREFERRED_NAMES]
        if len(preferred) != 1:
            names = ", ".join(p.name for p in candidates)
            raise CorpusError(f"Several CSV manifests in {root} ({names}); choose one with manifest=.")
        return preferred[0]
    return candidates[0]


def detect(root: Path, sample: list[Path] | None = None) -> float:
    """1.0 when a manifest-shaped CSV sits at the top of ``root``, else 0.0."""
    root = Path(root)
    if not root.is_dir():
        return 0.0
    return 1.0 if any(is_manifest(p) for p in root.glob("*") if not p.name.startswith(".")) else 0.0


def _resolve_row(root: Path, base: Path, raw: str) -> Path | str:
    """The row's file as ``root``/relative path, or the reason it is rejected."""
    candidate = Path(raw)
    target = (candidate if candidate.is_absolute() else base / candidate).resolve()
    real_root = root.resolve()
    if not target.is_relative_to(real_root):
        return "path escapes the corpus folder"
    return root / target.relative_to(real_root)


def parse(
    root: Path,
    name: str,
    *,
    probe_durations: bool = True,
    manifest: str | None = None,
) -> CorpusScan:
    """Scan a corpus described by a CSV manifest."""
    root = check_root(Path(root))
    manifest_path = find_manifest(root, manifest)
    base = manifest_path.parent
    matches: list[tuple[Path, Match]] = []
    skipped: list[Skipped] = []
    listed: set[Path] = set()  # accepted-or-judged files, for duplicate rows
    mentioned: set[Path] = set()  # every row's path as the folder walk sees it
    with manifest_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        columns = [c.strip().lower() for c in next(reader)]
        index = {c: columns.index(c) for c in ("path", "label", "speaker") if c in columns}
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            cells = {c: (row[i].strip() if i < len(row) else "") for c, i in index.items()}
            if not cells["path"]:
                skipped.append(Skipped(manifest_path, "row without a path"))
                continue
            resolved = _resolve_row(root, base, cells["path"])
            mentioned.add(base / cells["path"])  # so a rejected row is not reported twice
            if isinstance(resolved, str):
                skipped.append(Skipped(Path(cells["path"]), resolved))
                continue
            if resolved in listed:
                skipped.append(Skipped(resolved, "listed more than once in the manifest"))
                continue
            listed.add(resolved)
            label = canonical_label(cells["label"])
            if not resolved.is_file():
                skipped.append(Skipped(resolved, "file not found"))
            elif not is_audio(resolved):
                skipped.append(Skipped(resolved, NOT_AUDIO))
            elif label is None:
                skipped.append(Skipped(resolved, f"unknown label {cells['label']!r}"))
            else:
                matches.append((resolved, Match(label, cells.get("speaker") or None, cells["label"])))
    for path in list_files(root):
        if path in listed or path in mentioned or path == manifest_path:
            continue
        reason = f"not listed in {manifest_path.name}" if is_audio(path) else NOT_AUDIO
        skipped.append(Skipped(path, reason))
    return build_scan(name, NAME, root, matches, skipped, probe_durations=probe_durations)
