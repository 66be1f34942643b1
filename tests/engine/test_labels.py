"""Canonical emotion names, aliases and training label sets."""

from __future__ import annotations

import json

import pytest

from training.engine.labels import CANONICAL_LABELS, LabelSet, canonical_label, resolve_label_set


@pytest.mark.parametrize("name", CANONICAL_LABELS)
def test_canonical_names_map_to_themselves(name: str) -> None:
    assert canonical_label(name) == name
    assert canonical_label(name.upper()) == name


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("fear", "fearful"),
        ("Fear", "fearful"),
        ("anger", "angry"),
        ("surprise", "surprised"),
        ("ps", "surprised"),
        ("PS", "surprised"),
        ("pleasant_surprise", "surprised"),
        ("pleasant_surprised", "surprised"),
        ("Pleasant Surprised", "surprised"),
        ("pleasant-surprise", "surprised"),
        ("happiness", "happy"),
        ("joy", "happy"),
        ("sadness", "sad"),
        ("disgusted", "disgust"),
        ("bored", "boredom"),
        ("boredom", "boredom"),
        ("neu", "neutral"),
        ("hap", "happy"),
        ("sad", "sad"),
        ("ang", "angry"),
        ("fea", "fearful"),
        ("dis", "disgust"),
        ("sur", "surprised"),
        ("fru", "frustrated"),
        ("exc", "excited"),
        ("  Angry ", "angry"),
    ],
)
def test_aliases(alias: str, expected: str) -> None:
    assert canonical_label(alias) == expected


@pytest.mark.parametrize("name", ["", "x", "a", "s", "n", "W", "contempt", "happy2", "xxx", "oth", "angryy"])
def test_unknown_names_return_none(name: str) -> None:
    # Single letters are corpus codes (SAVEE "a", EmoDB "W"), never guessed here.
    assert canonical_label(name) is None


def test_non_string_returns_none() -> None:
    assert canonical_label(None) is None  # type: ignore[arg-type]


RAVDESS = {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
TESS = {"neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
EMODB = {"neutral", "boredom", "happy", "sad", "angry", "fearful", "disgust"}


def test_common_keeps_the_intersection_in_canonical_order() -> None:
    ls = resolve_label_set({"ravdess": RAVDESS, "tess": TESS}, mode="common")
    assert ls.labels == ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert ls.mode == "common"
    assert ls.apply("calm") is None
    assert ls.apply("fearful") == "fearful"


def test_all_keeps_the_union() -> None:
    ls = resolve_label_set({"ravdess": RAVDESS, "emodb": EMODB}, mode="all")
    assert ls.labels == (
        "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised", "boredom",
    )


def test_mapping_is_applied_before_common() -> None:
    ls = resolve_label_set({"ravdess": RAVDESS, "tess": TESS}, mode="common", mapping={"calm": "neutral"})
    assert ls.apply("calm") == "neutral"
    assert ls.apply("neutral") == "neutral"
    assert "calm" not in ls.labels


def test_mapping_can_drop_classes() -> None:
    ls = resolve_label_set(
        {"ravdess": RAVDESS, "tess": TESS}, mode="all", mapping={"calm": "", "surprised": None}
    )
    assert "calm" not in ls.labels and "surprised" not in ls.labels
    assert ls.apply("calm") is None and ls.apply("surprised") is None
    assert ls.mapping == {"calm": "", "surprised": ""}


def test_mapping_accepts_aliases_and_rejects_unknown_names() -> None:
    ls = resolve_label_set({"a": {"angry", "fearful", "sad"}}, mapping={"fear": "anger"})
    assert ls.mapping == {"fearful": "angry"}
    with pytest.raises(ValueError, match="Unknown emotion"):
        resolve_label_set({"a": RAVDESS}, mapping={"calm": "sleepy"})


def test_common_mode_mapping_enables_shared_class() -> None:
    # "bored" exists only in one corpus; mapped onto neutral it no longer blocks "common".
    ls = resolve_label_set({"emodb": EMODB, "tess": TESS}, mapping={"boredom": "neutral"})
    assert ls.apply("boredom") == "neutral"
    assert ls.labels == ("neutral", "happy", "sad", "angry", "fearful", "disgust")


def test_include_selects_an_explicit_list() -> None:
    ls = resolve_label_set({"ravdess": RAVDESS, "tess": TESS}, include=["Anger", "sad", "calm", "neutral"])
    assert ls.labels == ("neutral", "calm", "sad", "angry")
    assert ls.mode == "include"
    assert ls.apply("happy") is None


def test_include_is_validated_against_the_corpora() -> None:
    with pytest.raises(ValueError, match="boredom"):
        resolve_label_set({"ravdess": RAVDESS}, include=["angry", "boredom"])
    with pytest.raises(ValueError, match="Unknown emotion"):
        resolve_label_set({"ravdess": RAVDESS}, include=["angry", "contempt"])
    # A class dropped by the mapping no longer exists.
    with pytest.raises(ValueError, match="calm"):
        resolve_label_set({"ravdess": RAVDESS}, include=["angry", "calm"], mapping={"calm": "neutral"})


def test_errors() -> None:
    with pytest.raises(ValueError, match="mode"):
        resolve_label_set({"a": RAVDESS}, mode="some")
    with pytest.raises(ValueError, match="No corpora"):
        resolve_label_set({})
    with pytest.raises(ValueError, match="at least two"):
        resolve_label_set({"a": {"angry", "sad"}, "b": {"angry", "happy"}}, mode="common")
    with pytest.raises(ValueError, match="Unknown emotion"):
        resolve_label_set({"a": {"angry", "grumpy"}})


def test_label_set_round_trip_and_json() -> None:
    ls = resolve_label_set({"ravdess": RAVDESS, "tess": TESS}, mapping={"calm": "neutral"})
    data = json.loads(json.dumps(ls.to_dict()))
    again = LabelSet.from_dict(data)
    assert again == ls
    assert again.index("happy") == 1 and len(again) == 7


def test_label_set_is_frozen_hashable_and_does_not_alias_the_mapping() -> None:
    mapping = {"calm": "neutral"}
    ls = LabelSet(labels=("sad", "neutral"), mapping=mapping)
    mapping["calm"] = "sad"
    assert ls.mapping == {"calm": "neutral"}
    assert ls.labels == ("neutral", "sad")
    hash(ls)
    with pytest.raises(AttributeError):
        ls.mode = "all"  # type: ignore[misc]


def test_from_dict_rejects_bad_data() -> None:
    with pytest.raises(ValueError):
        LabelSet.from_dict({"mapping": {}})
    with pytest.raises(ValueError):
        LabelSet.from_dict({"labels": ["angry", "grumpy"]})
    with pytest.raises(ValueError):
        LabelSet.from_dict({"labels": ["angry", "sad"], "mode": "weird"})
