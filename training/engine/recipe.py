"""The training recipe: features, model size and training settings, with each front end's
defaults. Stored with every run and checkpoint (:meth:`Recipe.to_dict`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from recognition.engine.features import FeatureConfig
from recognition.engine.model import MODEL_SIZES, ModelConfig

from .data import AugmentConfig
from .trainer import TrainConfig

__all__ = ["Recipe", "FRONT_ENDS", "WHISPER_AUGMENT", "WHISPER_MODEL"]


# The Whisper front end's recipe. Its states are cached, so augmentation works on them: one
# time mask and one channel mask (the same channels of every layer) per example; waveform
# augmentation would need the encoder on every epoch.
WHISPER_AUGMENT = AugmentConfig(speed=(1.0,), gain_db=0.0, noise_prob=0.0, freq_masks=1, freq_mask_width=64,
                                time_masks=1, time_mask_fraction=0.15)
# The projection reads every layer's states (one learned weight per layer was measured worse).
WHISPER_MODEL = {"conv_channels": (), "pools": (), "dropout": 0.2, "layer_mix": "concat"}
FRONT_ENDS = {"whisper": "Whisper-base encoder states (pretrained, frozen)", "logmel": "log-Mel CNN (from scratch)",
              "mfcc": "MFCC CNN (from scratch)"}


@dataclass(frozen=True)
class Recipe:
    """The default training recipe; every field can be overridden per run. The default front
    end is the pretrained Whisper-base encoder; :meth:`for_front_end` gives each front end's
    own defaults (the from-scratch CNN's are those the project measured for it)."""

    # Per-speaker mean normalisation: removes the speaker's and the channel's colouring but
    # keeps each utterance's loudness and brightness relative to the speaker.
    # Encoder states come every 20 ms; four are averaged per BLSTM step (80 ms, the CNN's
    # stride), once, before they are cached. A recording of an unknown speaker is centred on
    # the training population's speaker mean.
    features: FeatureConfig = field(default_factory=lambda: FeatureConfig(
        kind="whisper", speaker_cmn=True, state_pool=4, unknown_speaker="population", centre_prior_s=10.0))
    model_size: str = "medium"
    model_overrides: dict = field(default_factory=dict)
    # No own-centred share: unknown speakers get the population mean, which the speaker-centred
    # examples already prepare the model for (measured equal or better on both counts).
    # Three heads from three seeds, their probabilities averaged: the folds of one head swing
    # with its seed, and the heads share one encoder pass, so asking three costs little.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=20, lr=1e-3, patience=8, own_centre_share=0.0,
                                                                   members=3, augment=WHISPER_AUGMENT))

    def __post_init__(self) -> None:
        # A recipe never carries a teacher, so a distilling one must train its own: an ensemble.
        if self.train.distil_weight > 0 and self.train.members < 2:
            raise ValueError("Distilling needs an ensemble of at least two models to learn from.")

    @classmethod
    def for_front_end(cls, kind: str) -> Recipe:
        """The default recipe of front end ``kind`` (one of ``FEATURE_KINDS``)."""
        if kind == "whisper":
            return cls()
        # From scratch: a seed ensemble of five models, each asked once (bench/RESULTS.md,
        # "How many models?"), with waveform augmentation and the CNN's defaults.
        return cls(features=FeatureConfig(kind=kind, speaker_cmn=True), train=TrainConfig(members=5))

    @property
    def front_end(self) -> str:
        """What the model reads, in words, for reports."""
        return FRONT_ENDS[self.features.kind]

    def model_config(self, n_classes: int) -> ModelConfig:
        if self.model_size not in MODEL_SIZES:
            raise ValueError(f"model size must be one of {sorted(MODEL_SIZES)}")
        preset = dict(MODEL_SIZES[self.model_size])
        if self.features.encoder_layers:
            preset.update(WHISPER_MODEL, encoder_layers=self.features.encoder_layers)
        return ModelConfig(n_features=self.features.n_features, n_classes=n_classes, **{**preset, **self.model_overrides})

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        """Inverse of :meth:`to_dict`; missing parts take their defaults (training settings
        TrainConfig's: a stored recipe without ``members`` is one model, as before ensembles)."""
        kind = (data.get("features") or {}).get("kind", "logmel")  # recipes stored before the Whisper front end are the CNN's
        default = cls.for_front_end(kind)
        return cls(
            features=FeatureConfig.from_dict({**default.features.to_dict(), **(data.get("features") or {})}),
            model_size=data.get("model_size", default.model_size),
            model_overrides=dict(data.get("model_overrides") or {}),
            train=TrainConfig.from_dict(data.get("train") or {}),
        )

    def to_dict(self) -> dict:
        return {
            "features": self.features.to_dict(),
            "model_size": self.model_size,
            "model_overrides": dict(self.model_overrides),
            "train": self.train.to_dict(),
        }
