"""The entries of the later held-out sets (issue 24, round 11 on), kept apart from
:mod:`tfopt.coverage.corpus_entries` so each module stays one screenful of sets. Each set is chosen
before any measurement, from packages new to the corpus, and committed before first contact."""

from __future__ import annotations

from tfopt.coverage.corpus_entry import Entry

__all__ = ["ENTRIES", "HELD_OUT_11"]

_PHONET = ("phonet/phonet.py", "phonet/Phonological.py")

ENTRIES: tuple[Entry, ...] = (
    # -- the eleventh held-out set: new packages, chosen before measuring (issue 24, round 11)
    Entry("phonet-multitask", "phonet", "0.3.7", "phonet/models/model.h5", "keras2-h5",
          "Keras 2 weights (2019) built by the package's own Phonet(['all']) (its model(): BatchNorm + two "
          "Bidirectional GRU(128, reset_after=False) + TimeDistributed Dense heads) and saved as .h5: "
          "phonological-class posteriors over (?, 40, 34) log-Mel frames, 18 softmax heads named after the "
          "classes in the package's (unsorted) order: a multi-output RNN", held_out=True,
          build="phonet-multitask", code=_PHONET),
    Entry("phonet-phonemes", "phonet", "0.3.7", "phonet/models/phonemes.hdf5", "keras2-h5",
          "Keras 2 weights built by Phonet(['all']) like phonet-multitask (its modelp(): two Bidirectional GRU "
          "+ TimeDistributed Dense softmax over the phoneme set)", held_out=True,
          build="phonet-phonemes", code=_PHONET),
    Entry("cutkum", "cutkum", "2.4", "cutkum/frozen_model.pb", "graphdef",
          "TF1 frozen GraphDef (2018): Thai word segmenter, a time-major stacked GRU dynamic_rnn (inputs "
          "[time, batch, 80] one-hot chars, seq_lengths [batch], an fw_state [1, batch, 896] placeholder, "
          "keep_prob of unknown rank) and a map_fn over its gathered output, all in v1 control flow with "
          "TensorArrayV3; constant settings nodes (cell_sizes, num_layers, ...) frozen beside `probs`",
          held_out=True),  # the description corrected after the run (GRU, not LSTM); the model is unchanged
)
HELD_OUT_11 = tuple(e.name for e in ENTRIES)
"""The eleventh held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 11)."""
