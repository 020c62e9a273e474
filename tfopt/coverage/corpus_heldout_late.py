"""The held-out sets from round 25 on (issue 24), kept apart from :mod:`tfopt.coverage.corpus_heldout`
(which is full). Each set is chosen before any measurement, from packages new to the corpus, and
committed before first contact."""

from __future__ import annotations

from tfopt.coverage.corpus_entry import Entry

__all__ = ["ENTRIES", "HELD_OUT_25"]

_SET_25: tuple[Entry, ...] = (
    # -- the twenty-fifth held-out set: new packages, chosen before measuring (issue 24, round 25)
    Entry("cispliceai", "cispliceai", "1.2.2", "cispliceai/data/CI-SpliceAI.pb", "graphdef",
          "TF1-style frozen GraphDef (the package wraps it with wrap_function + prune, its first node the "
          "input, its last the output): CI-SpliceAI splice-site probabilities over one-hot DNA (?, ?, 4) of "
          "any length, 10 000 nt of context cropped away; an ensemble of five residual Conv1D nets (dilated "
          "convolutions as SpaceToBatchND/BatchToSpaceND, unfused batch norms, softmax each) averaged by Mean",
          held_out=True),
    Entry("transly-cmu", "transly", "0.1.3", "transly/pronunciation/trained_models/cmu/model.h5", "keras2-h5",
          "Keras 2.3.1 .h5 functional (2020): English grapheme-to-phoneme seq2seq trained on the CMU "
          "dictionary, two inputs (encoder chars (?, 13), teacher-forced decoder phonemes (?, 19)), Embedding, "
          "Bidirectional LSTM encoder, LSTM decoder with Dot attention + softmax Activation, TimeDistributed "
          "Dense heads: a multi-input RNN", held_out=True),
    Entry("transly-en2hi", "transly", "0.1.3", "transly/transliteration/trained_models/en2hi/model.h5",
          "keras2-h5", "Keras 2.3.1 .h5 like transly-cmu: the English-to-Hindi transliteration seq2seq "
          "(inputs (?, 16) and (?, 18), a larger vocabulary)", held_out=True),
    Entry("astro-ghost-photoz", "astro-ghost", "2.2.3", "astro_ghost/MLP_lupton.hdf5", "keras2-h5",
          "Keras 2.4.0 .hdf5 functional (tf.keras): GHOST's photometric-redshift MLP over (?, 31) Pan-STARRS "
          "colour/magnitude features, Dense layers whose activation is a LeakyReLU layer object "
          "(serialized inside the Dense config), Dropout, a softmax over redshift bins", held_out=True),
)
HELD_OUT_25 = tuple(e.name for e in _SET_25)
"""The twenty-fifth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 25)."""
ENTRIES = _SET_25
