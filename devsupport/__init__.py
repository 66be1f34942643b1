"""Generators shared by the test suite (``tests/``) and the benchmark scripts (``bench/``).

Not part of the product: no app imports it and it is not a Django app. Each module is small
and stands alone:

- :mod:`devsupport.synth`: labelled speech-like audio, WAV and Ogg writers, folder corpora;
- :mod:`devsupport.hostile_audio`: playlists that name server files or URLs, float WAVs of
  samples that are no recording;
- :mod:`devsupport.recorder`: a waveform cut into live WebM/Ogg/MP4 chunks as a browser's
  MediaRecorder sends them;
- :mod:`devsupport.tiny_model`: small real checkpoints, registered as ModelVersions;
- :mod:`devsupport.factories`: a ready Corpus with its Utterances in the database.
"""
