"""The run list's search, filters, sort and duration; notes and tags; the compare data of
every metric; model versions side by side; the example clips are what the synthesiser makes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from devsupport.factories import ready_corpus
from devsupport.tiny_model import register_tiny
from tests.make_examples import FOLDER, write_examples
from training.models import Corpus, EpochMetric, TrainingRun
from training.selectors.run_search import run_list_search, run_tags
from training.selectors.runs import run_compare_data
from training.services.annotations import parse_tags, run_annotate
from training.services.runs import RunError


@pytest.fixture
def runs(db, tmp_path, user):
    corpus = ready_corpus(tmp_path / "c")
    other = Corpus.objects.create(name="other", status=Corpus.Status.READY)
    now = timezone.now()
    made = {}
    for name, status, minutes, ua, corpora, tags, notes in (
        ("alpha baseline", "succeeded", 10, 0.61, [corpus], ["baseline"], ""),
        ("beta whisper", "succeeded", 3, 0.72, [corpus, other], ["whisper", "baseline"], "tried a lower lr"),
        ("gamma", "failed", 1, None, [other], [], ""),
        ("delta", "queued", None, None, [corpus], [], ""),
    ):
        run = TrainingRun.objects.create(
            name=name, status=status, labels=["happy", "sad"], tags=tags, notes=notes, created_by=user,
            test_metrics={"ua": ua} if ua is not None else {},
            started_at=None if minutes is None else now - timedelta(minutes=minutes + 1),
            finished_at=None if minutes is None else now - timedelta(minutes=1),
        )
        run.corpora.set(corpora)
        made[name] = run
    return made


def names(runs) -> list[str]:
    return [r.name for r in runs]


def test_search_filters_and_sorts(runs):
    assert names(run_list_search(q="LOWER")) == ["beta whisper"]  # notes, any case
    assert names(run_list_search(q="baseline", sort="name")) == ["alpha baseline", "beta whisper"]  # name or tag
    assert names(run_list_search(q="other", sort="name")) == ["beta whisper", "gamma"]  # corpus names
    assert names(run_list_search(status="failed")) == ["gamma"]
    corpus = runs["delta"].corpora.get()
    assert names(run_list_search(corpus=corpus.pk, sort="name")) == ["alpha baseline", "beta whisper", "delta"]
    assert names(run_list_search(tag="whisper")) == ["beta whisper"]
    # Sorting: missing values last in both directions; duration of a finished run is start to end.
    assert names(run_list_search(sort="-test_ua"))[:2] == ["beta whisper", "alpha baseline"]
    by_duration = run_list_search(sort="duration")
    assert names(by_duration) == ["gamma", "beta whisper", "alpha baseline", "delta"]
    assert by_duration[0].duration == pytest.approx(60) and by_duration[-1].duration is None
    assert names(run_list_search(sort="-duration"))[:3] == ["alpha baseline", "beta whisper", "gamma"]
    assert run_tags() == ["baseline", "whisper"]


def test_run_list_page(auth_client, runs):
    page = auth_client.get(reverse("runs:list") + "?q=whisper").content.decode()
    assert "beta whisper" in page and "alpha baseline" not in page
    assert f'name="run" value="{runs["beta whisper"].pk}"' in page and "Compare selected" in page
    assert "10 min 00 s" in auth_client.get(reverse("runs:list")).content.decode()  # the duration column
    page = auth_client.get(reverse("runs:list") + "?q=nothing-like-this").content.decode()
    assert 'id="no-match"' in page
    assert auth_client.get(reverse("runs:list") + "?sort=bogus&corpus=x").status_code == 200  # ignored, not an error


def test_notes_and_tags(auth_client, client, runs, django_user_model):
    assert parse_tags("Baseline, whisper  ravdess,baseline") == ["baseline", "whisper", "ravdess"]
    with pytest.raises(RunError, match="30 letters"):
        parse_tags("no/slashes")
    with pytest.raises(RunError, match="At most 12"):
        parse_tags(" ".join(f"t{i}" for i in range(13)))
    run = runs["gamma"]
    response = auth_client.post(reverse("runs:annotate", args=[run.pk]), {"notes": "  OOM on batch 64\r\nretry  ", "tags": "oom, retry"})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.notes == "OOM on batch 64\nretry" and run.tags == ["oom", "retry"]
    page = auth_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert 'value="oom, retry"' in page and "OOM on batch 64" in page
    response = auth_client.post(reverse("runs:annotate", args=[run.pk]), {"notes": "x", "tags": "bad/tag"}, follow=True)
    assert "Notes and tags not saved" in response.content.decode()
    run.refresh_from_db()
    assert run.notes == "OOM on batch 64\nretry"  # a refused change loses nothing
    other = django_user_model.objects.create_user(username="bob", password="bob-password-123")
    client.force_login(other)
    assert client.post(reverse("runs:annotate", args=[run.pk]), {"notes": "mine now"}).status_code == 403
    with pytest.raises(RunError, match="5000"):
        run_annotate(run=run, notes="x" * 5001, tags="")


def test_compare_data_carries_every_metric(runs):
    run = runs["alpha baseline"]
    EpochMetric.objects.create(run=run, epoch=1, train_loss=1.2, train_acc=0.4, val_loss=1.1, wa=0.5, ua=0.45, macro_f1=0.42,
                               lr=0.1, duration=1)
    (data,) = run_compare_data([run.pk])
    assert data["epochs"] == [{"fold": 1, "member": 1, "epoch": 1, "ua": 0.45, "wa": 0.5, "macro_f1": 0.42, "val_loss": 1.1,
                               "train_loss": 1.2, "train_acc": 0.4}]


@pytest.mark.django_db
def test_model_versions_side_by_side(auth_client, tmp_path, settings, one_thread):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    a = register_tiny(tmp_path, name="a", seed=1)
    b = register_tiny(tmp_path, name="b", seed=2, activate=False)
    b.metrics = {**b.metrics, "ua": 0.25, "per_class": {"sad": {"recall": 0.125, "precision": 0.5}}}
    b.confusion = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    b.save()
    page = auth_client.get(reverse("recognition:model_compare") + f"?a={a.pk}&b={b.pk}").content.decode()
    assert "a v1" in page and "b v1" in page and 'id="compare-per-class"' in page
    assert "0.500" in page and "0.250" in page and "0.125" in page
    assert "Confusion, b v1" in page and "Confusion, a v1" not in page  # only b stores a matrix
    page = auth_client.get(reverse("recognition:model_compare") + f"?a={a.pk}").content.decode()
    assert 'id="choose-two"' in page
    assert 'id="model-compare-form"' in auth_client.get(reverse("recognition:models")).content.decode()


def test_example_clips_are_the_synthesisers(tmp_path):
    made = write_examples(tmp_path)
    assert sorted(p.name for p in made) == sorted(p.name for p in FOLDER.glob("*.wav"))
    for path in made:
        shipped = FOLDER / path.name
        assert shipped.read_bytes() == path.read_bytes(), f"static/examples/{path.name} is not what tests/make_examples.py makes"
        assert shipped.stat().st_size < 100_000
