"""Model registry pages: list, detail report, activation (staff only), download, permissions.

The versions are registered from real tiny checkpoints through the registry service, so
the engine's loader checks every file the pages show.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from recognition.engine.checkpoint import load_checkpoint, save_checkpoint
from recognition.models import ModelVersion
from recognition.services import model_version_activate, model_version_register
from tests.web.registry_helpers import CONFUSION, LABELS, PROTOCOL, register, write_checkpoint
from training.engine.data import AugmentConfig
from training.engine.trainer import TrainConfig


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path, one_thread):
    """Media in a private folder (and one torch thread for the tiny models)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def staff_client(client, django_user_model):
    staff = django_user_model.objects.create_user(username="stella", password="stella-password-123", is_staff=True)
    client.force_login(staff)
    return client


# ---- permissions -------------------------------------------------------------------------

@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_the_login_page(client, tmp_path):
    version = register(tmp_path)
    for url in (
        reverse("recognition:models"),
        reverse("recognition:model", args=[version.pk]),
        reverse("recognition:model_download", args=[version.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    response = client.post(reverse("recognition:model_activate", args=[version.pk]))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    version.refresh_from_db()
    assert not version.is_active


@pytest.mark.django_db
def test_non_staff_see_no_button_and_cannot_activate(auth_client, tmp_path):
    first = register(tmp_path, "first", activate=True)
    second = register(tmp_path, "second", seed=1)
    page = auth_client.get(reverse("recognition:model", args=[second.pk])).content.decode()
    assert "Make active" not in page
    assert "Make active" not in auth_client.get(reverse("recognition:models")).content.decode()
    response = auth_client.post(reverse("recognition:model_activate", args=[second.pk]))
    assert response.status_code == 403
    assert list(ModelVersion.objects.filter(is_active=True)) == [first]


# ---- list and detail ---------------------------------------------------------------------

@pytest.mark.django_db
def test_list_shows_metrics_and_the_active_badge(auth_client, tmp_path):
    active = register(tmp_path, "alpha", activate=True)
    register(tmp_path, "beta", seed=1)
    html = auth_client.get(reverse("recognition:models")).content.decode()
    assert "alpha" in html and "beta" in html
    assert html.count('class="badge active"') == 1
    # The badge sits in alpha's row, next to its link.
    row = html[html.index(reverse("recognition:model", args=[active.pk])):]
    assert row.index('class="badge active"') < row.index("</tr>")
    assert "0.639" in html and "0.714" in html and "0.611" in html  # UA, WA, macro-F1
    assert PROTOCOL[:40] in html
    assert "neutral, happy, sad" in html


@pytest.mark.django_db
def test_detail_shows_the_whole_report(auth_client, tmp_path):
    version = register(tmp_path, notes="first try on synthetic speech")
    html = auth_client.get(reverse("recognition:model", args=[version.pk])).content.decode()
    for text in ("0.639", "0.714", "0.611", PROTOCOL, version.sha256, "first try on synthetic speech",
                 "neutral, happy, sad", "vendor/plotly/plotly.min.js", "js/confusion.js", 'drawConfusion("confusion"'):
        assert text in html, text
    # The confusion matrix goes to the page as JSON for the heatmap.
    blob = re.search(r'<script id="confusion-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    assert json.loads(blob) == {"labels": LABELS, "matrix": CONFUSION}
    # Per-class recall and precision are derived from the confusion matrix when the
    # checkpoint carries none: happy = 2 of 4 true (recall .5), 2 of 4 predicted happy.
    per_class = html[html.index('id="per-class"'):]
    happy = per_class[per_class.index(">happy<"):per_class.index("</tr>", per_class.index(">happy<"))]
    assert re.findall(r'<td class="num">([^<]+)</td>', happy) == ["0.500", "0.500", "0.500", "4"]
    sad = per_class[per_class.index(">sad<"):per_class.index("</tr>", per_class.index(">sad<"))]
    assert re.findall(r'<td class="num">([^<]+)</td>', sad) == ["0.833", "0.833", "0.833", "6"]


@pytest.mark.django_db
def test_detail_names_the_features(auth_client, tmp_path):
    path = write_checkpoint(tmp_path / "f.pt")
    version = model_version_register(name="features", checkpoint_path=path)
    html = auth_client.get(reverse("recognition:model", args=[version.pk])).content.decode()
    assert "log-Mel, 16 bands," in " ".join(html.split())


@pytest.mark.django_db
def test_detail_prefers_stored_per_class_scores(auth_client, tmp_path):
    path = write_checkpoint(tmp_path / "pc.pt", per_class=True)
    version = model_version_register(name="pc", checkpoint_path=path)
    html = auth_client.get(reverse("recognition:model", args=[version.pk])).content.decode()
    per_class = html[html.index('id="per-class"'):]
    assert per_class.count('<td class="num">0.900</td>') == 3 and per_class.count('<td class="num">0.800</td>') == 3


@pytest.mark.django_db
def test_lineage_links_to_its_run_and_survives_the_run(auth_client, tmp_path):
    from training.models import TrainingRun

    run = TrainingRun.objects.create(name="pooled", status=TrainingRun.Status.SUCCEEDED, hyperparameters={"train": {"epochs": 3}})
    lineage = {"source": "training run", "run_id": run.pk, "run_name": "pooled", "corpora": ["ravdess", "tess"],
               "protocol": PROTOCOL, "hyperparameters": {"train": {"epochs": 3, "lr": 0.003}}}
    version = register(tmp_path, "pooled", lineage=lineage)
    TrainingRun.objects.filter(pk=run.pk).update(model_version=version)
    url = reverse("recognition:model", args=[version.pk])
    html = auth_client.get(url).content.decode()
    assert f'href="/runs/{run.pk}/"' in html
    assert "ravdess, tess" in html and "&quot;lr&quot;: 0.003" in html
    run.delete()
    html = auth_client.get(url).content.decode()
    assert f'href="/runs/{run.pk}/"' not in html
    assert "(deleted)" in html and "ravdess, tess" in html
    assert "seed ensemble" not in html  # one model: nothing to say


@pytest.mark.django_db
def test_model_page_shows_the_scores_as_the_app_classifies_that_the_checkpoint_carries(auth_client, tmp_path):
    path = write_checkpoint(tmp_path / "m.pt", members=3, train_config=TrainConfig(members=3).to_dict())
    ck = load_checkpoint(path)
    ck.metrics = {**ck.metrics, "tta": {"wa": 0.7, "ua": 0.6812, "macro_f1": 0.66, "speeds": [0.9, 1.0, 1.1]},
                  "alone": {"wa": 0.6, "ua": 0.5934, "macro_f1": 0.58}}
    save_checkpoint(path, ck)
    version = model_version_register(name="trio", checkpoint_path=path)
    assert version.metrics["tta"]["ua"] == 0.6812 and version.metrics["ua"] == 0.6389
    html = auth_client.get(reverse("recognition:model", args=[version.pk])).content.decode()
    assert '<dd id="ua-tta">0.681' in html and '<dd id="ua-alone">0.593' in html and "ua-tta-every" not in html


@pytest.mark.django_db
@pytest.mark.parametrize(("members", "tta_on"), [(5, True), (3, False)])
def test_model_page_does_not_call_scores_at_every_speed_the_apps_answer_when_it_asks_once(auth_client, tmp_path, settings, members, tta_on):
    # Five models scored at every speed before the pass budget existed; or test-time augmentation off here.
    settings.SER_TEST_TIME_AUGMENTATION = tta_on
    path = write_checkpoint(tmp_path / "m.pt", members=members, train_config=TrainConfig(members=members).to_dict())
    ck = load_checkpoint(path)
    ck.metrics = {**ck.metrics, "tta": {"wa": 0.7, "ua": 0.6812, "macro_f1": 0.66, "speeds": [0.9, 1.0, 1.1]}}
    save_checkpoint(path, ck)
    version = model_version_register(name="big", checkpoint_path=path)
    html = auth_client.get(reverse("recognition:model", args=[version.pk])).content.decode()
    assert 'id="ua-tta"' not in html and "UA as the app classifies" not in html
    assert '<dd id="ua-tta-every">0.681' in html and "not how this server asks it" in html


@pytest.mark.django_db
@pytest.mark.parametrize(("members", "augment", "tta_on", "expected"), [
    (3, True, True, "3 models (seed ensemble) at speeds 0.9, 1.0, 1.1 (test-time augmentation): 9 passes, probabilities averaged"),
    (3, True, False, "3 models (seed ensemble): 3 passes, probabilities averaged (test-time augmentation is off on this server)"),
    (5, True, True, "5 models (seed ensemble): 5 passes, probabilities averaged"),  # over the pass budget: once each
    (5, True, False, "5 models (seed ensemble): 5 passes, probabilities averaged"),
    (1, True, True, "one model at speeds 0.9, 1.0, 1.1 (test-time augmentation): 3 passes, probabilities averaged"),
    (2, False, True, "2 models (seed ensemble): 2 passes, probabilities averaged"),
    (1, False, True, "one model, one pass"),
    (1, True, False, "one model, one pass (test-time augmentation is off on this server)"),
])
def test_model_page_says_how_the_app_asks_the_model(auth_client, tmp_path, settings, members, augment, tta_on, expected):
    settings.SER_TEST_TIME_AUGMENTATION = tta_on
    train = TrainConfig(members=members, augment=AugmentConfig(enabled=augment)).to_dict()
    path = write_checkpoint(tmp_path / "m.pt", members=members, train_config=train)
    version = model_version_register(name="trio", checkpoint_path=path)
    assert version.inference["members"] == members
    html = auth_client.get(reverse("recognition:model", args=[version.pk])).content.decode()
    assert f'<dd id="answers">{expected}</dd>' in html


@pytest.mark.django_db
def test_model_page_of_a_version_registered_before_inference_was_recorded(auth_client, tmp_path):
    version = register(tmp_path, "old")
    ModelVersion.objects.filter(pk=version.pk).update(inference={})
    html = auth_client.get(reverse("recognition:model", args=[version.pk])).content.decode()
    assert 'id="answers"' not in html


@pytest.mark.django_db
def test_unknown_version_is_404(auth_client):
    assert auth_client.get(reverse("recognition:model", args=[999])).status_code == 404
    assert auth_client.get(reverse("recognition:model_download", args=[999])).status_code == 404


# ---- activation --------------------------------------------------------------------------

@pytest.mark.django_db
def test_staff_activate_from_the_model_page(staff_client, tmp_path):
    first = register(tmp_path, "first", activate=True)
    second = register(tmp_path, "second", seed=1)
    page = staff_client.get(reverse("recognition:model", args=[second.pk])).content.decode()
    assert 'id="make-active"' in page
    assert staff_client.get(reverse("recognition:model_activate", args=[second.pk])).status_code == 405
    response = staff_client.post(reverse("recognition:model_activate", args=[second.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("recognition:model", args=[second.pk])
    assert "is now the active model" in response.content.decode()
    assert list(ModelVersion.objects.filter(is_active=True)) == [second]
    first.refresh_from_db()
    assert not first.is_active
    # The active version's page has no button any more.
    assert 'id="make-active"' not in response.content.decode()


@pytest.mark.django_db
def test_activate_requires_the_csrf_token(client, django_user_model, tmp_path):
    from django.test import Client

    staff = django_user_model.objects.create_user(username="stella", password="pw-123-long-enough", is_staff=True)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    version = register(tmp_path)
    assert strict.post(reverse("recognition:model_activate", args=[version.pk])).status_code == 403
    version.refresh_from_db()
    assert not version.is_active


@pytest.mark.django_db(transaction=True)
def test_database_refuses_two_active_versions(tmp_path):
    first = register(tmp_path, "first", activate=True)
    second = register(tmp_path, "second", seed=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(is_active=True)
    assert list(ModelVersion.objects.filter(is_active=True)) == [first]
    model_version_activate(version=second)
    assert list(ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True)) == [second.pk]


@pytest.mark.django_db
def test_activation_that_keeps_failing_raises_instead_of_pretending(tmp_path, monkeypatch):
    version = register(tmp_path)

    class Refusing:
        def exclude(self, **kwargs):
            return self

        def update(self, **kwargs):
            raise IntegrityError("another version is active")

    monkeypatch.setattr(ModelVersion.objects, "filter", lambda *a, **k: Refusing())
    with pytest.raises(IntegrityError):
        model_version_activate(version=version)
    monkeypatch.undo()
    version.refresh_from_db()
    assert not version.is_active


# ---- download ------------------------------------------------------------------------------

@pytest.mark.django_db
def test_download_streams_the_checkpoint_as_an_attachment(auth_client, tmp_path):
    version = register(tmp_path, "my model")
    response = auth_client.get(reverse("recognition:model_download", args=[version.pk]))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == version.sha256 == response["X-Checkpoint-SHA256"]
    assert len(body) == version.size_bytes
    assert response["Content-Disposition"] == 'attachment; filename="my-model-v1.pt"'


@pytest.mark.django_db
def test_download_of_a_missing_file_is_404(auth_client, tmp_path):
    version = register(tmp_path)
    version.checkpoint.storage.delete(version.checkpoint.name)
    assert auth_client.get(reverse("recognition:model_download", args=[version.pk])).status_code == 404
    html = auth_client.get(reverse("recognition:model", args=[version.pk])).content.decode()
    assert "checkpoint file missing" in html



# ---- the heatmap script (shared with the run page) -------------------------------------------

NODE_HARNESS = r"""
const fs = require("fs");
global.window = global;
const calls = [];
const el = { textContent: "", classList: { contains: () => false } };
global.document = {
  getElementById: (id) => (id === "c" ? el : null), documentElement: { dataset: {} },
  addEventListener: () => {}, dispatchEvent: () => {},
};
global.CustomEvent = class { constructor(type, init) { this.type = type; this.detail = init && init.detail; } };
window.Plotly = { react: (e, data, layout) => calls.push({ data, layout }), purge: () => {} };
for (const script of process.argv.slice(1)) eval(fs.readFileSync(script, "utf8"));  // site.js (window.fmt), then the chart
const input = JSON.parse(fs.readFileSync(0, "utf8"));
window.drawConfusion("c", input.labels, input.matrix);
console.log(JSON.stringify({ calls, text: el.textContent }));
"""


def draw_with_node(labels: list[str], matrix: list[list[int]]) -> dict:
    """Run static/js/confusion.js under Node with a recording stand-in for Plotly."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    scripts = Path(__file__).resolve().parents[2] / "static" / "js"
    done = subprocess.run(
        [node, "-e", NODE_HARNESS, str(scripts / "site.js"), str(scripts / "confusion.js")], input=json.dumps({"labels": labels, "matrix": matrix}),
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(done.stdout)


def test_heatmap_is_row_normalised_with_counts_on_hover_and_cell_labels():
    out = draw_with_node(LABELS, CONFUSION)
    (call,) = out["calls"]
    trace, layout = call["data"][0], call["layout"]
    assert trace["type"] == "heatmap" and trace["x"] == LABELS and trace["y"] == LABELS
    assert trace["z"][0] == pytest.approx([0.75, 0.25, 0.0]) and trace["z"][2] == pytest.approx([0, 1 / 6, 5 / 6])
    assert (trace["zmin"], trace["zmax"]) == (0, 1)
    assert "true <b>sad</b> → predicted <b>happy</b><br>1 of 6 (16.7%)" == trace["text"][2][1]
    assert layout["yaxis"]["autorange"] == "reversed"  # first true class on top
    assert layout["xaxis"]["title"]["text"] == "predicted" and layout["yaxis"]["title"]["text"] == "true"
    assert trace["texttemplate"] == "%{z:.1%}"  # the row share written in every cell of a small matrix, as every share


def test_heatmap_leaves_large_matrices_unannotated_and_refuses_bad_shapes():
    labels = [f"c{i}" for i in range(13)]
    out = draw_with_node(labels, [[1] * 13 for _ in range(13)])
    assert not out["calls"][0]["data"][0]["texttemplate"]
    out = draw_with_node(LABELS, [[1, 2], [3, 4]])
    assert out["calls"] == [] and "No confusion matrix" in out["text"]
