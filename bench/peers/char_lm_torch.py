"""PyTorch side of examples/char_lm: the same character-level transformer on the same text, the same
batches and the same validation batches, trained for the same time, so that the validation losses
can be put side by side (docs/training.md). Debian's python3-torch (1.13) is enough:
    /usr/bin/python3 bench/peers/char_lm_torch.py --minutes 10 [--threads 2]

What is the same as cltape-char-lm (examples/char_lm/main.c):
  - the text: every regular file without a dot in its name in the data folder, in name order, or
    one file; the bytes that occur are the vocabulary (in byte order); 90% train, 10% validate;
  - training batches: windows at offsets splitmix64(seed) % (n_train - context - 1), drawn in the
    same order; validation: --val-batches batches at the same evenly spaced offsets;
  - the model: token embedding + learned position embedding, pre-LN blocks (one qkv product,
    causal softmax attention, MLP of 4 d_model with exact GELU), final LayerNorm (epsilon 1e-5),
    a dense head; Glorot-uniform weights and zero biases (cltape's defaults), LayerNorm 1 and 0;
  - Adam (betas 0.9 / 0.999, epsilon 1e-8), a linear warmup of --warmup steps, gradients clipped
    to a global norm of 1;
  - the budget: the loop (training steps and the periodic validation) stops after --steps steps or
    --minutes minutes; the last validation loss is reported.
The initial weights are drawn by PyTorch's generator, not cltape's: same distributions, other
values."""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def read_text(path):
    if not os.path.isdir(path):
        with open(path, "rb") as f:
            return f.read()
    parts = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if "." in name or not os.path.isfile(full):
            continue
        with open(full, "rb") as f:
            parts.append(f.read())
    return b"".join(parts)


def glorot_(w):
    fan_in, fan_out = (w.shape[0], w.shape[1]) if w.dim() == 2 else (w.numel(), w.numel())
    lim = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        w.uniform_(-lim, lim)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        # weights stored [in, out] as cltape's: y = x @ w + b
        self.qkv_w = nn.Parameter(torch.empty(d, 3 * d))
        self.qkv_b = nn.Parameter(torch.zeros(3 * d))
        self.out_w = nn.Parameter(torch.empty(d, d))
        self.out_b = nn.Parameter(torch.zeros(d))
        self.in_w = nn.Parameter(torch.empty(d, 4 * d))
        self.in_b = nn.Parameter(torch.zeros(4 * d))
        self.mo_w = nn.Parameter(torch.empty(4 * d, d))
        self.mo_b = nn.Parameter(torch.zeros(d))
        for w in (self.qkv_w, self.out_w, self.in_w, self.mo_w):
            glorot_(w)

    def forward(self, x, mask):
        b, t, d = x.shape
        h, dh = self.heads, d // self.heads
        qkv = self.ln1(x) @ self.qkv_w + self.qkv_b
        qkv = qkv.view(b, t, 3, h, dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + mask[:t, :t]
        a = torch.softmax(s, dim=-1) @ v
        a = a.transpose(1, 2).reshape(b, t, d)
        x = x + (a @ self.out_w + self.out_b)
        m = F.gelu(self.ln2(x) @ self.in_w + self.in_b)
        return x + (m @ self.mo_w + self.mo_b)


class CharLM(nn.Module):
    def __init__(self, vocab, context, d, heads, layers):
        super().__init__()
        self.pos = nn.Parameter(torch.empty(context, d))
        self.tok = nn.Parameter(torch.empty(vocab, d))
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d, eps=1e-5)
        self.head_w = nn.Parameter(torch.empty(d, vocab))
        self.head_b = nn.Parameter(torch.zeros(vocab))
        for w in (self.pos, self.tok, self.head_w):
            glorot_(w)
        i = torch.arange(context)
        self.register_buffer("mask", torch.where(i[None, :] <= i[:, None], 0.0, -1e9))

    def forward(self, ids):
        t = ids.shape[1]
        x = self.tok[ids] + self.pos[:t]
        for blk in self.blocks:
            x = blk(x, self.mask)
        return self.ln(x) @ self.head_w + self.head_b


def batch(tok, offs, t):
    idx = torch.tensor(offs)[:, None] + torch.arange(t + 1)[None, :]
    w = tok[idx]
    return w[:, :-1], w[:, 1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/usr/share/games/fortunes")
    ap.add_argument("--steps", type=int, default=1000000)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--val-batches", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log", default="char_lm_torch.csv")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    text = read_text(a.data)
    vocab_bytes = sorted(set(text))
    id_of = {b: i for i, b in enumerate(vocab_bytes)}
    tok = torch.tensor([id_of[b] for b in text], dtype=torch.long)
    n_train = len(text) * 9 // 10
    n_val = len(text) - n_train
    print(f"text: {len(text)} bytes from {a.data}, vocabulary {len(vocab_bytes)}, {n_train} training and "
          f"{n_val} validation bytes")
    model = CharLM(len(vocab_bytes), a.context, a.d_model, a.heads, a.layers)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"model: {a.layers} layers, d_model {a.d_model}, {a.heads} heads, context {a.context}, {nparams} "
          f"parameters; batch {a.batch}, Adam lr {a.lr}")
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    span = n_val - a.context - 1
    total = a.val_batches * a.batch

    def validation_loss():
        model.eval()
        s = 0.0
        with torch.no_grad():
            for k in range(a.val_batches):
                offs = [n_train + (k * a.batch + i) * span // total for i in range(a.batch)]
                x, y = batch(tok, offs, a.context)
                s += F.cross_entropy(model(x).reshape(-1, len(vocab_bytes)), y.reshape(-1)).item()
        model.train()
        return s / a.val_batches

    log = open(a.log, "w")
    log.write("step,seconds,train_loss,val_loss\n")
    rng = a.seed
    budget = a.minutes * 60
    step, run_sum, run_n, val = 0, 0.0, 0, float("nan")
    t0 = time.monotonic()
    elapsed = 0.0
    while step < a.steps and elapsed < budget:
        offs = []
        for _ in range(a.batch):
            rng, r = splitmix64(rng)
            offs.append(r % (n_train - a.context - 1))
        x, y = batch(tok, offs, a.context)
        for g in opt.param_groups:
            g["lr"] = a.lr * (step + 1) / a.warmup if step < a.warmup else a.lr
        loss = F.cross_entropy(model(x).reshape(-1, len(vocab_bytes)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lv = loss.item()
        if not math.isfinite(lv):
            sys.exit(f"error: the loss is {lv} at step {step}")
        step += 1
        run_sum += lv
        run_n += 1
        elapsed = time.monotonic() - t0
        if step % a.eval_every == 0 or step >= a.steps or elapsed >= budget:
            val = validation_loss()
            elapsed = time.monotonic() - t0
            log.write(f"{step},{elapsed:.1f},{run_sum / run_n:.4f},{val:.4f}\n")
            log.flush()
            print(f"step {step}  {elapsed:.0f} s  loss {run_sum / run_n:.4f}  val {val:.4f}", flush=True)
            run_sum, run_n = 0.0, 0
    print(f"trained {step} steps in {elapsed:.1f} s ({elapsed / step:.2f} s per step, validation included)")
    print(f"validation loss: {val:.4f} nats per byte")


if __name__ == "__main__":
    main()
