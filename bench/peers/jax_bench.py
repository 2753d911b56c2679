"""JAX side of the benchmark comparison: the workloads of bench/README.md written the way a JAX user
writes them (jax.grad / jax.vjp, parameters as pytrees, Adam written out). Each workload is measured
twice: op by op as written (system "jax", JAX's eager dispatch) and compiled with jax.jit (system
"jax-jit"). Run with the interpreter of bench/.venv (bench/peers/setup_peers.sh installs jax[cpu]):
    bench/.venv/bin/python bench/peers/jax_bench.py [--repeats N] [--threads N]
Threads: XLA's CPU client sizes its thread pools by the CPUs the process may run on, so the script
restricts itself to --threads CPUs (sched_setaffinity) before importing jax, and turns off Eigen's
own pool size with intra_op_parallelism_threads=--threads."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def limit_threads(n):
    """Runs this process on n CPUs at most; returns the CPUs it may use."""
    cpus = sorted(os.sched_getaffinity(0))
    if n < len(cpus):
        os.sched_setaffinity(0, cpus[:n])
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={n}".strip()
    return sorted(os.sched_getaffinity(0))


def main():
    args = benchlib.parse_args(__doc__)
    cpus = limit_threads(args.threads)
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as e:
        print(f"jax: skipped: cannot import jax ({e}); bench/peers/setup_peers.sh installs jax[cpu] into bench/.venv "
              "from PyPI", file=sys.stderr)
        return 0
    jax.config.update("jax_platforms", "cpu")
    device = f"{benchlib.cpu_model()} ({len(cpus)} CPUs)"
    for system in ("jax", "jax-jit"):
        benchlib.emit({"system": system, "meta": True, "version": jax.__version__, "threads": len(cpus),
                       "xla_flags": os.environ["XLA_FLAGS"]})

    def finish(out):
        """Waits for every array in out (JAX dispatches asynchronously)."""
        for leaf in jax.tree_util.tree_leaves(out):
            if hasattr(leaf, "block_until_ready"):
                leaf.block_until_ready()
        return out

    def run(name, fn, inputs, units="ms", inner=1, diag=False):
        """Measures fn(*inputs) as written (eager) and under jax.jit, its results waited for. The inputs
        are arguments, never captured: jit would take captured arrays for constants and could fold
        the whole computation at compile time."""
        if not benchlib.selected(args, name):
            return
        extra = {"diag": True} if diag else None
        jitted = jax.jit(fn)
        for system, f in (("jax", fn), ("jax-jit", jitted)):
            benchlib.measure(system, name, device, lambda f=f: finish(f(*inputs)), args, units=units, inner=inner,
                             extra=extra)

    key = jax.random.PRNGKey(0)

    def randn(*shape):
        nonlocal key
        key, sub = jax.random.split(key)
        return jax.random.normal(sub, shape, jnp.float32)

    # 1. eager overhead: y = x*x; z = y*y; dz/dx
    x0 = jnp.float32(3.0)

    def chain(x):
        y = x * x
        return y * y

    def scalar_chain(x):
        return jax.grad(chain)(x)

    assert float(scalar_chain(x0)) == 108.0
    run("eager_scalar_chain", scalar_chain, (x0,), units="us", inner=100)

    # 2. memory-bound chain on 4M elements: the value and its gradient
    xc = randn(4 * 1024 * 1024)

    def mem_f(x):
        return jnp.sum(jax.nn.sigmoid(jnp.sin(x) * x + jnp.exp(-x * x)))

    def memory_chain(x):
        return jax.value_and_grad(mem_f)(x)

    run("memory_chain_4m", memory_chain, (xc,))

    # 3. matmul 1024 forward and both gradients for a given dC
    a, b, dc = randn(1024, 1024), randn(1024, 1024), randn(1024, 1024)

    def matmul(a, b, dc):
        # c is returned too: under jit an unused product would be left out, one GEMM in three
        c, vjp = jax.vjp(jnp.matmul, a, b)
        return (c,) + tuple(vjp(dc))

    run("matmul_1024", matmul, (a, b, dc))

    # 4. training steps (Adam, softmax cross-entropy with integer labels), Adam as torch.optim.Adam
    def adam_init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return {"m": zeros, "v": zeros, "t": jnp.zeros((), jnp.int32)}

    def adam_update(params, grads, st, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        t = st["t"] + 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, st["m"], grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, st["v"], grads)
        c1, c2 = 1 - b1 ** t.astype(jnp.float32), 1 - b2 ** t.astype(jnp.float32)
        params = jax.tree_util.tree_map(lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v)
        return params, {"m": m, "v": v, "t": t}

    def xent(logits, y):
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def dense_init(n_in, n_out):
        bound = 1 / n_in ** 0.5
        return {"w": randn(n_in, n_out) * bound, "b": jnp.zeros((n_out,), jnp.float32)}

    def train_step_fn(forward, params, x, y):
        """A step function of no arguments over state it keeps, run eagerly or jitted; the jitted
        form is a pure function of (params, state) traced once."""
        state = {"params": params, "opt": adam_init(params)}

        def pure_step(params, opt, x, y):
            loss, grads = jax.value_and_grad(lambda p: xent(forward(p, x), y))(params)
            params, opt = adam_update(params, grads, opt)
            return params, opt, loss

        jitted = jax.jit(pure_step)

        def make(step_fn):
            def step():
                state["params"], state["opt"], loss = step_fn(state["params"], state["opt"], x, y)
                return loss
            return step

        return make(pure_step), make(jitted)

    def run_train(name, forward, params, x, y):
        if not benchlib.selected(args, name):
            return
        eager, jitted = train_step_fn(forward, params, x, y)
        for system, f in (("jax", eager), ("jax-jit", jitted)):
            benchlib.measure(system, name, device, lambda f=f: float(f()), args)

    def mlp_forward(p, x):
        h = jax.nn.relu(x @ p["l1"]["w"] + p["l1"]["b"])
        return h @ p["l2"]["w"] + p["l2"]["b"]

    key_l = jax.random.PRNGKey(1)
    mlp_params = {"l1": dense_init(784, 256), "l2": dense_init(256, 10)}
    run_train("mlp_train_step", mlp_forward, mlp_params, jax.random.uniform(key_l, (256, 784)),
              jax.random.randint(key_l, (256,), 0, 10))

    def conv(x, w, b):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + b

    def pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def cnn_forward(p, x):
        h = pool(jax.nn.relu(conv(x, p["c1"]["w"], p["c1"]["b"])))
        h = pool(jax.nn.relu(conv(h, p["c2"]["w"], p["c2"]["b"])))
        h = h.reshape(h.shape[0], -1)
        return h @ p["d"]["w"] + p["d"]["b"]

    cnn_params = {"c1": {"w": randn(3, 3, 1, 32) / 3, "b": jnp.zeros((32,), jnp.float32)},
                  "c2": {"w": randn(3, 3, 32, 64) / (3 * 32 ** 0.5), "b": jnp.zeros((64,), jnp.float32)},
                  "d": dense_init(64 * 7 * 7, 10)}
    run_train("cnn_train_step", cnn_forward, cnn_params, jax.random.uniform(key_l, (64, 28, 28, 1)),
              jax.random.randint(key_l, (64,), 0, 10))

    # 5. jacobian of tanh(x W), x a 256-vector
    xj, wj = randn(256), randn(256, 256) / 16

    def jacobian(x, w):
        return jax.jacrev(lambda v: jnp.tanh(v @ w))(x)

    assert jacobian(xj, wj).shape == (256, 256)
    run("jacobian_256", jacobian, (xj, wj))

    # single-op diagnostics, the same ops as bench_cltape's diag_* lines
    s1, s2 = jnp.float32(1.0), jnp.float32(2.0)
    run("diag_launch_add_scalar", jnp.add, (s1, s2), units="us", inner=100, diag=True)
    u, v = randn(4 * 1024 * 1024), randn(4 * 1024 * 1024)
    run("diag_add_4m", jnp.add, (u, v), diag=True)
    run("diag_sin_4m", jnp.sin, (u,), diag=True)
    # the sum read back as a Python float, as cltape's ct_tensor_item and torch's .item()
    if benchlib.selected(args, "diag_sum_4m"):
        jsum = jax.jit(jnp.sum)
        for system, f in (("jax", jnp.sum), ("jax-jit", jsum)):
            benchlib.measure(system, "diag_sum_4m", device, lambda f=f: float(f(u)), args, extra={"diag": True})
    mv_x, mv_w = randn(1, 256), randn(256, 256)
    run("diag_matvec_256", lambda x, w: x @ w.T, (mv_x, mv_w), units="us", inner=100, diag=True)
    run("diag_gemm_1024", jnp.matmul, (a, b), diag=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
