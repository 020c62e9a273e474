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
          "TF1 frozen GraphDef (2018): Thai word segmenter, a time-major LSTM RNN (inputs [time, batch, chars] "
          "one-hot chars, seq_lengths [batch], an fw_state [2, batch, cells] placeholder, keep_prob) with "
          "constant settings nodes (cell_sizes, num_layers, ...) frozen beside `probs`", held_out=True),
)
HELD_OUT_11 = tuple(e.name for e in ENTRIES)
"""The eleventh held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 11)."""
