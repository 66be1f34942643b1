"""The run form: the engine's defaults, and the choices a user is likely to change."""

from __future__ import annotations

from django import forms

from recognition.engine.features import FEATURE_KINDS, MEAN_NORMS
from recognition.engine.model import MODEL_SIZES
from training.engine.config import MAX_MEMBERS
from training.engine.experiment import Recipe
from training.models import Corpus, TrainingRun
from training.selectors.corpora import corpus_ready_list
from training.selectors.run_details import speakers_of

_defaults = Recipe().train
FRONT_END_CHOICES = {"whisper": "Whisper-base encoder (pretrained)", "logmel": "log-Mel CNN, from scratch",
                     "mfcc": "MFCC CNN, from scratch"}


class RunForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="The model version registered at the end takes this name.")
    corpora = forms.ModelMultipleChoiceField(
        queryset=Corpus.objects.none(), help_text="Several corpora are pooled (multi-domain training)."
    )
    label_mode = forms.ChoiceField(
        choices=[("common", "Common: classes every corpus has"), ("all", "All: every class of any corpus")],
        initial="common",
    )
    label_mapping = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "calm=neutral, boredom="}),
        help_text="Optional: map or drop classes before choosing (empty target drops the class).",
    )
    protocol = forms.ChoiceField(choices=TrainingRun.Protocol.choices, initial=TrainingRun.Protocol.HOLDOUT)
    test_speakers = forms.MultipleChoiceField(
        required=False, label="Test speakers",
        help_text="Hold-out only. None ticked: chosen automatically (about a fifth of each corpus' speakers, seeded). "
        "The run page names them and the validation speakers.",
    )
    folds = forms.IntegerField(min_value=2, max_value=20, initial=5, help_text="For k-fold only.")
    features = forms.ChoiceField(
        choices=[(k, FRONT_END_CHOICES[k]) for k in FEATURE_KINDS], initial=Recipe().features.kind, label="Front end",
        help_text="Whisper-base: a pretrained speech encoder, frozen; each recording is encoded once, then a small "
        "BLSTM + attention head trains in minutes. From scratch: the thesis CNN over log-Mel or MFCC features, "
        "trained from nothing (hours on a CPU). Epochs, learning rate, patience, dropout and models follow the choice.",
    )
    mean_norm = forms.ChoiceField(
        choices=[(k, {"speaker": "Per speaker", "utterance": "Per utterance", "none": "None"}[k]) for k in MEAN_NORMS],
        initial=Recipe().features.mean_norm, label="Mean normalisation",
        help_text="Subtract each speaker's (or each recording's) mean per band: less speaker and microphone "
        "colouring. Per speaker keeps how loud and bright a recording is for that voice; live, the record "
        "page centres on the speech it has heard so far.",
    )
    model_size = forms.ChoiceField(choices=[(k, k) for k in MODEL_SIZES], initial="medium")
    epochs = forms.IntegerField(
        min_value=1,
        max_value=500,
        initial=_defaults.epochs,
        help_text="Early stopping usually ends each model sooner.",
    )
    batch_size = forms.IntegerField(min_value=1, max_value=512, initial=_defaults.batch_size)
    lr = forms.FloatField(min_value=1e-6, max_value=1.0, initial=_defaults.lr, label="Learning rate")
    dropout = forms.FloatField(min_value=0.0, max_value=0.9, initial=Recipe().model_config(2).dropout)
    patience = forms.IntegerField(
        min_value=0, max_value=500, initial=_defaults.patience, help_text="Early stopping on validation UA; 0 = off."
    )
    augment = forms.BooleanField(
        required=False, initial=True,
        help_text="Whisper-base: time and channel masks on the encoder states. From scratch: speed, gain, noise and SpecAugment.",
    )
    members = forms.IntegerField(
        min_value=1, max_value=MAX_MEMBERS, initial=_defaults.members, label="Models in the ensemble",
        help_text="Each model trains from its own random start; predictions average them. N models take N times as "
        "long to train. To classify, N CNNs take N times as long; N Whisper heads share one encoder pass, which is most of the time.",
    )
    distil = forms.BooleanField(
        required=False, initial=False, label="Distil into one model",
        help_text="With several models: then train one more on their averaged answers and save it alone, so "
        "classifying asks one model (at its three speeds: three passes instead of five models' five). The "
        "ensemble's own test scores are shown beside it.",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["corpora"].queryset = corpus_ready_list()
        self.speaker_groups = speakers_of(self.fields["corpora"].queryset)
        self.fields["test_speakers"].choices = [
            (f"{corpus}/{speaker}", speaker) for corpus, speakers in self.speaker_groups.items() for speaker in speakers
        ]
