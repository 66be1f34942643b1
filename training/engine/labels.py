"""Canonical emotion names, the aliases corpora use for them, and training label sets.

Every corpus parser maps its own codes onto :data:`CANONICAL_LABELS`. A training run then
chooses a :class:`LabelSet`: an optional mapping between classes (``calm -> neutral``, or
dropping a class), followed by "common" (classes every corpus has) or "all" (the union),
or an explicit list chosen by the user.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CANONICAL_LABELS",
    "LABEL_SET_MODES",
    "LabelSet",
    "canonical_label",
    "resolve_label_set",
]

CANONICAL_LABELS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
    "boredom",
    "frustrated",
    "excited",
)

LABEL_SET_MODES: tuple[str, ...] = ("common", "all")

# Whole-word aliases only: single letters are corpus-specific codes (SAVEE "a", EmoDB "A"
# mean different things), so they are decoded by the corpus parsers, never here.
_ALIASES: dict[str, tuple[str, ...]] = {
    "neutral": ("neu", "neutrality"),
    "calm": ("calmness",),
    "happy": ("hap", "happiness", "joy", "joyful"),
    "sad": ("sadness",),
    "angry": ("ang", "anger"),
    "fearful": ("fea", "fear", "afraid"),
    "disgust": ("dis", "disgusted"),
    "surprised": (
        "sur",
        "surprise",
        "ps",
        "pleasant_surprise",
        "pleasant_surprised",
        "pleasantly_surprised",
    ),
    "boredom": ("bor", "bored"),
    "frustrated": ("fru", "frustration"),
    "excited": ("exc", "excitement"),
}

_LOOKUP: dict[str, str] = {name: name for name in CANONICAL_LABELS}
for _canonical, _names in _ALIASES.items():
    for _alias in _names:
        _LOOKUP[_alias] = _canonical

_ORDER = {name: i for i, name in enumerate(CANONICAL_LABELS)}


def _normalise(name: str) -> str:
    # "Pleasant Surprise", "pleasant-surprised" and "PLEASANT_SURPRISED" are the same name.
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def canonical_label(name: str) -> str | None:
    """The canonical emotion name for ``name`` (a canonical name or a known alias), else None.

    Matching is case-insensitive and treats ``-``, ``_`` and spaces alike. Only whole words
    and the usual three-letter short forms are recognised; anything else returns None.
    """
    if not isinstance(name, str):
        return None
    return _LOOKUP.get(_normalise(name))


def _sorted_labels(labels: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(labels), key=_ORDER.__getitem__))


def _require_canonical(name: str, what: str) -> str:
    label = canonical_label(name)
    if label is None:
        raise ValueError(f"Unknown emotion {what} {name!r}; known: {', '.join(CANONICAL_LABELS)}.")
    return label


def _normalise_mapping(mapping: Mapping[str, str | None] | None) -> dict[str, str]:
    """Canonical keys and values; a dropped class maps to "" (JSON- and database-friendly)."""
    result: dict[str, str] = {}
    for source, target in (mapping or {}).items():
        key = _require_canonical(source, "in mapping")
        value = "" if target is None or str(target).strip() == "" else _require_canonical(target, "in mapping")
        if key in result and result[key] != value:
            raise ValueError(f"Mapping gives {key!r} two targets: {result[key]!r} and {value!r}.")
        result[key] = value
    return result


@dataclass(frozen=True)
class LabelSet:
    """The classes a training run predicts and how corpus labels reach them.

    Attributes:
        labels: class names in :data:`CANONICAL_LABELS` order; the model's output order.
        mapping: canonical label -> canonical label, or "" to drop that class. Applied once
            (no chaining).
        mode: "common", "all" or "include" (an explicit user list).
    """

    labels: tuple[str, ...]
    mapping: dict[str, str] = field(default_factory=dict, hash=False)
    mode: str = "common"

    def __post_init__(self) -> None:
        # Copy and validate so a LabelSet never aliases a caller's dict or holds unknown names.
        labels = tuple(_require_canonical(label, "in label set") for label in self.labels)
        if len(set(labels)) != len(labels):
            raise ValueError(f"Label set has duplicates: {labels}.")
        object.__setattr__(self, "labels", _sorted_labels(labels))
        object.__setattr__(self, "mapping", _normalise_mapping(self.mapping))
        if self.mode not in (*LABEL_SET_MODES, "include"):
            raise ValueError(f"Unknown label-set mode {self.mode!r}; use 'common', 'all' or 'include'.")

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, label: str) -> int:
        """Position of ``label`` in :attr:`labels` (the class index). Raises ValueError if absent."""
        return self.labels.index(label)

    def apply(self, label: str) -> str | None:
        """The class a corpus utterance with canonical ``label`` trains as, or None if excluded."""
        canonical = canonical_label(label)
        if canonical is None:
            return None
        target = self.mapping.get(canonical, canonical)
        return target if target in self.labels else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored with training runs and checkpoints."""
        return {"labels": list(self.labels), "mapping": dict(self.mapping), "mode": self.mode}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSet:
        """Inverse of :meth:`to_dict`; validates every name."""
        try:
            return cls(
                labels=tuple(data["labels"]),
                mapping=dict(data.get("mapping") or {}),
                mode=str(data.get("mode", "common")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"Not a label set: {data!r}") from exc


def resolve_label_set(
    corpus_labels: Mapping[str, Iterable[str]],
    mode: str = "common",
    mapping: Mapping[str, str | None] | None = None,
    include: Iterable[str] | None = None,
) -> LabelSet:
    """Choose the classes for a run over one or more corpora.

    Args:
        corpus_labels: corpus name -> the canonical labels it contains.
        mode: "common" keeps labels present in every corpus (after mapping); "all" keeps
            the union.
        mapping: applied first, e.g. ``{"calm": "neutral"}``; map to "" or None to drop a class.
        include: an explicit list of classes; overrides ``mode`` and must name labels that
            exist in at least one corpus after mapping.

    Raises:
        ValueError: unknown mode or label, no corpora, an included label no corpus has, or
            fewer than two classes left.
    """
    if mode not in LABEL_SET_MODES:
        raise ValueError(f"Unknown label-set mode {mode!r}; use one of {', '.join(LABEL_SET_MODES)}.")
    if not corpus_labels:
        raise ValueError("No corpora given to choose labels from.")
    norm_mapping = _normalise_mapping(mapping)

    per_corpus: dict[str, set[str]] = {}
    for corpus, labels in corpus_labels.items():
        mapped = set()
        for label in labels:
            canonical = _require_canonical(label, f"in corpus {corpus!r}:")
            target = norm_mapping.get(canonical, canonical)
            if target:
                mapped.add(target)
        per_corpus[corpus] = mapped

    union = set().union(*per_corpus.values())
    if include is not None:
        chosen = [_require_canonical(label, "in include list") for label in include]
        missing = [label for label in chosen if label not in union]
        if missing:
            raise ValueError(
                f"No corpus has {', '.join(missing)} (after mapping); available: "
                f"{', '.join(_sorted_labels(union)) or 'none'}."
            )
        selected, used_mode = set(chosen), "include"
    elif mode == "common":
        selected, used_mode = set.intersection(*per_corpus.values()), mode
    else:
        selected, used_mode = union, mode

    if len(selected) < 2:
        raise ValueError(
            f"The label set needs at least two classes, got {sorted(selected) or 'none'} "
            f"(mode {used_mode!r}); per corpus: "
            + "; ".join(f"{c}: {', '.join(_sorted_labels(s)) or '-'}" for c, s in per_corpus.items())
        )
    return LabelSet(labels=_sorted_labels(selected), mapping=norm_mapping, mode=used_mode)
