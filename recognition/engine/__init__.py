"""Framework-free speech emotion recognition engine: audio, features, model, VAD, predictor.

Nothing in this package imports Django; it can be used from a plain Python prompt.
"""

ENGINE_VERSION = "1.0"
SAMPLE_RATE = 16000
