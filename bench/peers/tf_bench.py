"""TensorFlow side of the benchmark comparison: the workloads of bench/README.md written the way a
TensorFlow user writes them (tf.GradientTape, Keras layers and Adam). Each workload is measured
twice: eagerly (system "tensorflow", what cltape is modelled on) and compiled with tf.function
(system "tensorflow-function"). Run with the interpreter of bench/.venv:
    bench/.venv/bin/python bench/peers/tf_bench.py [--repeats N] [--threads N]
Threads: intra-op = --threads, inter-op = 1 (one stream of ops, the work split inside each op)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    args = benchlib.parse_args(__doc__)
    try:
        import tensorflow as tf
    except ImportError as e:
        print(f"tensorflow: skipped: cannot import tensorflow ({e}); bench/peers/setup_peers.sh installs it "
              "into bench/.venv from PyPI", file=sys.stderr)
        return 0

    tf.get_logger().setLevel("ERROR")  # eager tape.jacobian retraces its pfor function on every call, by design
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras = tf.keras
    device = f"{benchlib.cpu_model()} ({args.threads} intra-op threads)"
    keras_version = getattr(keras, "__version__", None) or getattr(keras, "version", lambda: "")()
    for system in ("tensorflow", "tensorflow-function"):
        benchlib.emit({"system": system, "meta": True, "version": tf.__version__, "keras": keras_version,
                       "threads": args.threads, "interop_threads": 1})

    def run(name, eager_fn, units="ms", inner=1):
        """Measures eager_fn as written and wrapped in tf.function; each returns tensors, and the
        timed call ends with .numpy() on them so the work is finished."""
        if not benchlib.selected(args, name):
            return
        graph_fn = tf.function(eager_fn)
        for system, fn in (("tensorflow", eager_fn), ("tensorflow-function", graph_fn)):
            def call(fn=fn):
                out = fn()
                for t in (out if isinstance(out, (tuple, list)) else (out,)):
                    t.numpy()
            benchlib.measure(system, name, device, call, args, units=units, inner=inner)

    tf.random.set_seed(0)

    # 1. eager overhead: y = x*x; z = y*y; dz/dx
    x0 = tf.constant(3.0)

    def scalar_chain():
        with tf.GradientTape() as tape:
            tape.watch(x0)
            y = x0 * x0
            z = y * y
        return tape.gradient(z, x0)

    assert float(scalar_chain()) == 108.0
    run("eager_scalar_chain", scalar_chain, units="us", inner=100)

    # 2. memory-bound chain on 4M elements
    xc = tf.random.normal([4 * 1024 * 1024])

    def memory_chain():
        with tf.GradientTape() as tape:
            tape.watch(xc)
            f = tf.reduce_sum(tf.sigmoid(tf.sin(xc) * xc + tf.exp(-xc * xc)))
        g = tape.gradient(f, xc)
        return f, g

    run("memory_chain_4m", memory_chain)

    # 3. matmul 1024 forward and both gradients for a given dC
    a = tf.random.normal([1024, 1024])
    b = tf.random.normal([1024, 1024])
    dc = tf.random.normal([1024, 1024])

    def matmul():
        with tf.GradientTape() as tape:
            tape.watch(a)
            tape.watch(b)
            c = tf.matmul(a, b)
        # c is returned too: tf.function would prune an unused product, one GEMM in three
        return [c] + tape.gradient(c, [a, b], output_gradients=dc)

    run("matmul_1024", matmul)

    # 4. training steps (Adam, softmax cross-entropy with integer labels)
    def train_step_fn(model, x, y):
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        opt = keras.optimizers.Adam(learning_rate=1e-3)

        def step():
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        return step

    def labels(n):
        return tf.random.uniform([n], 0, 10, dtype=tf.int32)

    mlp = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])
    run("mlp_train_step", train_step_fn(mlp, tf.random.uniform([256, 784]), labels(256)))

    cnn = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(), keras.layers.Dense(10)])
    run("cnn_train_step", train_step_fn(cnn, tf.random.uniform([64, 28, 28, 1]), labels(64)))

    # 5. jacobian of tanh(x W), x a 256-vector
    xj = tf.random.normal([256])
    wj = tf.random.normal([256, 256]) / 16

    def jacobian():
        with tf.GradientTape() as tape:
            tape.watch(xj)
            y = tf.tanh(tf.linalg.matvec(wj, xj, transpose_a=True))
        return tape.jacobian(y, xj)

    assert tuple(jacobian().shape) == (256, 256)
    run("jacobian_256", jacobian)
    return 0


if __name__ == "__main__":
    sys.exit(main())
