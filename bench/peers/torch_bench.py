#!/usr/bin/python3
"""PyTorch side of the benchmark comparison: the workloads of bench/README.md, written the way a
PyTorch user writes them (autograd.grad, nn.Module, torch.optim.Adam). Run with Debian's python3
(python3-torch): /usr/bin/python3 bench/peers/torch_bench.py [--repeats N] [--threads N]."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

SYSTEM = "pytorch"


def main():
    args = benchlib.parse_args(__doc__)
    try:
        import torch
        import torch.nn.functional as F
        from torch import nn
    except ImportError as e:
        print(f"{SYSTEM}: skipped: cannot import torch ({e}); bench/peers/setup_peers.sh installs python3-torch",
              file=sys.stderr)
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = f"{benchlib.cpu_model()} ({args.threads} threads)"
    benchlib.emit({"system": SYSTEM, "meta": True, "version": torch.__version__, "threads": torch.get_num_threads(),
                   "interop_threads": torch.get_num_interop_threads()})

    def run(name, fn, units="ms", inner=1):
        if benchlib.selected(args, name):
            benchlib.measure(SYSTEM, name, device, fn, args, units=units, inner=inner)

    # 1. eager overhead: y = x*x; z = y*y; dz/dx
    x0 = torch.tensor(3.0, requires_grad=True)

    def scalar_chain():
        y = x0 * x0
        z = y * y
        (g,) = torch.autograd.grad(z, x0)
        return g.item()

    assert scalar_chain() == 108.0
    run("eager_scalar_chain", scalar_chain, units="us", inner=100)

    # 2. memory-bound chain on 4M elements
    xc = torch.randn(4 * 1024 * 1024, requires_grad=True)

    def memory_chain():
        f = torch.sigmoid(torch.sin(xc) * xc + torch.exp(-xc * xc)).sum()
        (g,) = torch.autograd.grad(f, xc)
        return f.item()

    run("memory_chain_4m", memory_chain)

    # 3. matmul 1024 forward and both gradients for a given dC
    a = torch.randn(1024, 1024, requires_grad=True)
    b = torch.randn(1024, 1024, requires_grad=True)
    dc = torch.randn(1024, 1024)

    def matmul():
        c = a @ b
        da, db = torch.autograd.grad(c, (a, b), dc)
        return c, da, db

    run("matmul_1024", matmul)

    # 4. training steps (Adam, softmax cross-entropy with integer labels)
    def train_step_fn(model, x, y):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()

        return step

    mlp = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    run("mlp_train_step", train_step_fn(mlp, torch.rand(256, 784), torch.randint(0, 10, (256,))))

    # PyTorch's native layout is NCHW; the layers and sizes are those of the NHWC definition
    cnn = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10))
    run("cnn_train_step", train_step_fn(cnn, torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))))

    # 5. jacobian of tanh(x W), x a 256-vector
    xj = torch.randn(256)
    wj = torch.randn(256, 256) / 16

    def jacobian():
        return torch.autograd.functional.jacobian(lambda v: torch.tanh(v @ wj), xj, vectorize=True)

    assert jacobian().shape == (256, 256)
    run("jacobian_256", jacobian)

    # single-op diagnostics, the same ops as bench_cltape's diag_* lines
    def diag(name, fn, units="ms", inner=1):
        if benchlib.selected(args, name):
            benchlib.measure(SYSTEM, name, device, fn, args, units=units, inner=inner, extra={"diag": True})

    with torch.no_grad():
        s1, s2 = torch.tensor(1.0), torch.tensor(2.0)
        diag("diag_launch_add_scalar", lambda: torch.add(s1, s2), units="us", inner=100)
        u, v = torch.randn(4 * 1024 * 1024), torch.randn(4 * 1024 * 1024)
        diag("diag_add_4m", lambda: torch.add(u, v))
        diag("diag_sin_4m", lambda: torch.sin(u))
        diag("diag_sum_4m", lambda: torch.sum(u).item())
        mv_x, mv_w = torch.randn(1, 256), torch.randn(256, 256)
        diag("diag_matvec_256", lambda: mv_x @ mv_w.T, units="us", inner=100)
        ga, gb = a.detach(), b.detach()
        diag("diag_gemm_1024", lambda: ga @ gb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
