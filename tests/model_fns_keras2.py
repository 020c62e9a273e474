"""Subclassed Keras models written as Keras-2-era packages write them (``from tensorflow import keras``,
``self.build(shape)`` in ``__init__``; SUMOnet of the eighth held-out set): under Keras 3 their build()
makes no weights, so a TF2 checkpoint of theirs was written by tf-keras. Used as ``--model-fn`` targets."""

from tensorflow import keras


class BuiltSubclass(keras.Model):
    """Conv1D -> (Bidirectional GRU | Dense) -> pooling -> Dense(heads, softmax), built in __init__."""

    def __init__(self, steps=9, features=5, units=4, heads=3, recurrent=True):
        super().__init__()
        self.conv = keras.layers.Conv1D(units * 2, 2, activation="relu")
        self.mid = (keras.layers.Bidirectional(keras.layers.GRU(units, return_sequences=True)) if recurrent
                    else keras.layers.Dense(units, activation="tanh"))
        self.pool = keras.layers.GlobalAveragePooling1D()
        self.drop = keras.layers.Dropout(0.4)
        self.head = keras.layers.Dense(heads)
        self.soft = keras.layers.Activation("softmax")
        self.build((None, steps, features))

    def call(self, inputs):
        return self.soft(self.head(self.drop(self.pool(self.mid(self.conv(inputs))))))


def gru_small():
    return BuiltSubclass(9, 5, 4, 3, True)


def gru_wide():
    return BuiltSubclass(14, 7, 6, 2, True)


def dense_only():
    return BuiltSubclass(6, 3, 5, 4, False)
