#!/usr/bin/python3
"""PyTorch reference for bench/bench_train: the same configurations, the same step.

One training step: embedding (or one-hot) -> nn.LSTM / nn.RNN(tanh) over T steps -> nn.Linear
head on every step -> mean cross-entropy; zero_grad, backward, clip_grad_norm_(5), then Adam
(Adagrad lr 0.1 for minchar). The state is carried between steps, detached. Tokens are random.
'sample' runs the lstm-256 model one character at a time with batch 1 under no_grad.

Prints one line 'RESULT key=value ...' that bench/run parses, after a human-readable summary.
Run with /usr/bin/python3 (Debian's python3-torch); OPENBLAS_NUM_THREADS sets BLAS threads,
torch's own pool is always 1 thread.
"""
import argparse
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 96
EMBED = 64
CLIP = 5.0

# name: (cell, hidden, layers, batch, T, one_hot, optimizer)
CONFIGS = {
    "lstm-256": ("lstm", 256, 1, 32, 64, False, "adam"),
    "lstm-512x2": ("lstm", 512, 2, 32, 64, False, "adam"),
    "elman-128": ("elman", 128, 1, 32, 64, False, "adam"),
    "minchar": ("elman", 100, 1, 1, 25, True, "adagrad"),
    "sample": ("lstm", 256, 1, 1, 1, False, None),
    "gru-256": ("gru", 256, 1, 32, 64, False, "adam"),
}


class CharModel(nn.Module):
    def __init__(self, cell, hidden, layers, one_hot):
        super().__init__()
        self.one_hot = one_hot
        in_dim = VOCAB if one_hot else EMBED
        self.embed = None if one_hot else nn.Embedding(VOCAB, EMBED)
        if cell == "lstm":
            self.rnn = nn.LSTM(in_dim, hidden, num_layers=layers)
        elif cell == "gru":
            self.rnn = nn.GRU(in_dim, hidden, num_layers=layers)
        else:
            self.rnn = nn.RNN(in_dim, hidden, num_layers=layers, nonlinearity="tanh")
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, x, state):
        # x: T x B token ids
        if self.one_hot:
            inp = F.one_hot(x, VOCAB).float()
        else:
            inp = self.embed(x)
        out, state = self.rnn(inp, state)          # out: T x B x H
        return self.head(out.reshape(-1, out.shape[-1])), state


def detach(state):
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def zero_state(cell, layers, batch, hidden):
    h = torch.zeros(layers, batch, hidden)
    if cell == "lstm":
        return (h, torch.zeros(layers, batch, hidden))
    return h


def blas_info():
    """OpenBLAS kernel and thread count as torch's OpenBLAS sees them ('?' if not OpenBLAS)."""
    try:
        import ctypes
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode(), lib.openblas_get_num_threads()
    except (OSError, AttributeError):
        return "?", 0


def maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bench_train(name, warmup, steps, seed):
    cell, hidden, layers, batch, T, one_hot, optim = CONFIGS[name]
    torch.manual_seed(seed)
    model = CharModel(cell, hidden, layers, one_hot)
    if optim == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = torch.optim.Adagrad(model.parameters(), lr=0.1)
    params = list(model.parameters())
    # A few pre-made random batches, cycled through (making them is not timed).
    n_batches = 8
    xs = torch.randint(0, VOCAB, (n_batches, T, batch))
    ys = torch.randint(0, VOCAB, (n_batches, T * batch))
    state = zero_state(cell, layers, batch, hidden)

    def step(k):
        nonlocal state
        logits, new_state = model(xs[k % n_batches], state)
        loss = F.cross_entropy(logits, ys[k % n_batches])
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        state = detach(new_state)
        return loss

    for k in range(warmup):
        step(k)
    times = []
    t_start = time.perf_counter()
    for k in range(steps):
        t0 = time.perf_counter()
        loss = step(k)
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_start
    tokens = steps * batch * T
    return {
        "tokens_per_s": tokens / total,
        "ms_per_step": 1e3 * total / steps,
        "median_ms_per_step": 1e3 * statistics.median(times),
        "loss": float(loss),
        "steps": steps,
        "tokens_per_step": batch * T,
    }


def bench_sample(warmup, steps, seed):
    cell, hidden, layers, _, _, _, _ = CONFIGS["sample"]
    torch.manual_seed(seed)
    model = CharModel(cell, hidden, layers, False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        state = zero_state(cell, layers, 1, hidden)
        tok = torch.zeros(1, 1, dtype=torch.long)
        count = 0

        def one():
            nonlocal state, tok
            logits, state = model(tok, state)
            probs = torch.softmax(logits, dim=-1)
            tok = torch.multinomial(probs, 1, generator=gen).view(1, 1)

        for _ in range(warmup):
            one()
        times = []
        t_start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            one()
            times.append(time.perf_counter() - t0)
            count += 1
        total = time.perf_counter() - t_start
    return {
        "tokens_per_s": count / total,
        "ms_per_step": 1e3 * total / count,
        "median_ms_per_step": 1e3 * statistics.median(times),
        "loss": 0.0,
        "steps": count,
        "tokens_per_step": 1,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=0, help="timed steps (0: per-config default)")
    ap.add_argument("--warmup", type=int, default=-1, help="untimed steps first (-1: default)")
    ap.add_argument("--quick", action="store_true", help="a short run")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    sample = a.config == "sample"
    defaults = {"lstm-256": 30, "lstm-512x2": 8, "elman-128": 60, "minchar": 2000, "sample": 4000,
                "gru-256": 30}
    steps = a.steps if a.steps > 0 else defaults[a.config]
    if a.quick:
        steps = max(1, steps // 4)
    warmup = a.warmup if a.warmup >= 0 else max(2, steps // 10)
    r = bench_sample(warmup, steps, a.seed) if sample else bench_train(a.config, warmup, steps,
                                                                        a.seed)
    rss = maxrss_kb()
    core, blas_threads = blas_info()
    print(f"torch {torch.__version__} {a.config}: {r['tokens_per_s']:.0f} tokens/s, "
          f"{r['ms_per_step']:.3f} ms/step (median {r['median_ms_per_step']:.3f}), "
          f"peak RSS {rss / 1024:.1f} MiB, loss {r['loss']:.4f}")
    print(f"RESULT impl=torch config={a.config} tokens_per_s={r['tokens_per_s']:.2f} "
          f"ms_per_step={r['ms_per_step']:.4f} median_ms={r['median_ms_per_step']:.4f} "
          f"maxrss_kb={rss} steps={r['steps']} tokens_per_step={r['tokens_per_step']} "
          f"core={core} threads={blas_threads} torch_threads={torch.get_num_threads()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
