"""Regenerate the Keras test fixtures tests/data/models/keras_mlp.onnx and keras_cnn.onnx with tf2onnx.

Run with a separate dev venv (TensorFlow 2.15 needs numpy < 2 and protobuf 3.20, hence the pinned set), from the
repository root:

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" "onnx==1.16.2" "protobuf==3.20.3" "numpy<2" "onnxruntime==1.20.1"
    /tmp/tfvenv/bin/python tests/data/models/make_keras_models.py

keras_mlp: Dense(32, relu) -> Dense(32, relu) -> Dense(5, softmax) on (batch, 16).
keras_cnn: NHWC input (batch, 8, 8, 3): Conv2D(8, 3x3, same, relu) -> MaxPool2D(2) -> Conv2D(16, 3x3, same, relu)
-> MaxPool2D(2) -> Flatten -> Dense(32, relu) -> Dense(10). tf2onnx keeps the NHWC interface and puts Transposes
around the NCHW ONNX Conv/MaxPool (3 channels, so the input transpose is a real Transpose, not a Reshape). Both
have a dynamic batch axis; weights and biases are random (fixed seed; Keras's default zero biases would be dropped
by tf2onnx's optimizer); opset 13.
"""

import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402

HERE = Path(__file__).resolve().parent
OPSET = 13


def bias():
    return tf.keras.initializers.RandomNormal(stddev=0.1)


def keras_mlp():
    inp = tf.keras.Input((16,), name="input")
    h = tf.keras.layers.Dense(32, activation="relu", bias_initializer=bias())(inp)
    h = tf.keras.layers.Dense(32, activation="relu", bias_initializer=bias())(h)
    out = tf.keras.layers.Dense(5, activation="softmax", bias_initializer=bias())(h)
    return tf.keras.Model(inp, out, name="keras_mlp")


def keras_cnn():
    inp = tf.keras.Input((8, 8, 3), name="input")
    h = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", bias_initializer=bias())(inp)
    h = tf.keras.layers.MaxPool2D(2)(h)
    h = tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu", bias_initializer=bias())(h)
    h = tf.keras.layers.MaxPool2D(2)(h)
    h = tf.keras.layers.Flatten()(h)
    h = tf.keras.layers.Dense(32, activation="relu", bias_initializer=bias())(h)
    out = tf.keras.layers.Dense(10, bias_initializer=bias())(h)
    return tf.keras.Model(inp, out, name="keras_cnn")


def export(model, shape, path: Path):
    spec = (tf.TensorSpec((None, *shape), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, output_path=str(path))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    x = np.random.default_rng(0).uniform(-1, 1, (3, *shape)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-4, atol=1e-5)
    ops = dict(Counter(n.op_type for n in proto.graph.node))
    print(f"{path.name}: opset {OPSET}, {path.stat().st_size} bytes, onnxruntime agrees with Keras\n"
          f"  inputs {[(i.name, [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]) for i in proto.graph.input]}\n"
          f"  op census: {ops}")


def main():
    tf.keras.utils.set_random_seed(0)
    export(keras_mlp(), (16,), HERE / "keras_mlp.onnx")
    tf.keras.utils.set_random_seed(1)
    export(keras_cnn(), (8, 8, 3), HERE / "keras_cnn.onnx")


if __name__ == "__main__":
    main()
