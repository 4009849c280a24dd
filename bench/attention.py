"""Attention with dropout: cdropout's scaled_dot_product_attention against PyTorch's.

    python bench/attention.py [--quick] [--lengths 256 512 1024 2048 4096]
                              [--features 64 128] [--threads 1 2] [--dtypes float32
                              bfloat16] [--repeats 3] [--memory] [--json FILE]

A training step's attention, forward and backward (B=4, H=8, D features, causal and
not), timed in one process, interleaved, best of the repeats: PyTorch's flash kernel at
dropout_p=0 (the cost of no dropout), PyTorch at dropout_p=0.1 (its math path, which
materialises the (T, T) probabilities and mask), and cdropout at dropout_p=0.1. Prints
milliseconds and the ratios against flash at p=0 (the target: at most 1.15x) and of
PyTorch at p=0.1 to cdropout (the target: at least 2.5x from T=512). --memory adds the
peak resident memory of one step of each, in a fresh process per cell. Prints the CPU.
"""

import argparse
import itertools
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from cdropout import _runtime
from cdropout.torch import scaled_dot_product_attention

BATCH, HEADS = 4, 8
CONTENDERS = {
    "flash p=0": lambda q, k, v, causal: F.scaled_dot_product_attention(
        q, k, v, is_causal=causal
    ),
    "torch p=0.1": lambda q, k, v, causal: F.scaled_dot_product_attention(
        q, k, v, dropout_p=0.1, is_causal=causal
    ),
    "cdropout p=0.1": lambda q, k, v, causal: scaled_dot_product_attention(
        q, k, v, dropout_p=0.1, is_causal=causal
    ),
}


def _inputs(length, features, dtype):
    return [torch.randn(BATCH, HEADS, length, features, dtype=dtype,
                        requires_grad=True) for _ in range(3)]  # fmt: skip


def _step(name, q, k, v, causal):
    out = CONTENDERS[name](q, k, v, causal)
    out.backward(torch.ones_like(out))
    for tensor in (q, k, v):
        tensor.grad = None


def time_cell(length, features, dtype, causal, repeats):
    """Best seconds of forward + backward of each contender, interleaved."""
    q, k, v = _inputs(length, features, dtype)
    best = dict.fromkeys(CONTENDERS, float("inf"))
    for name in CONTENDERS:  # a first call of each: allocations, code paths
        _step(name, q, k, v, causal)
    for _ in range(repeats):
        for name in CONTENDERS:
            start = time.perf_counter()
            _step(name, q, k, v, causal)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


# The step's own peak: Linux resets the high-water mark on "5" into clear_refs (the
# import of PyTorch set it higher than a small step reaches)
_PEAK = """
import sys, torch
sys.path.insert(0, sys.argv[6])
from attention import CONTENDERS, _inputs, _step
def status(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field))
torch.set_num_threads(int(sys.argv[5]))
dtype = getattr(torch, sys.argv[4])
_step(sys.argv[1], *_inputs(64, int(sys.argv[3]), dtype), sys.argv[7] == "causal")
q, k, v = _inputs(int(sys.argv[2]), int(sys.argv[3]), dtype)  # (after a first call)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS:")
_step(sys.argv[1], q, k, v, sys.argv[7] == "causal")
print(status("VmHWM:") - before)
"""


def peak_mib(name, length, features, dtype, threads, causal):
    """Peak resident memory added by one step, in a fresh process, MiB."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, name, str(length), str(features),
         str(dtype).split(".")[-1], str(threads), sys.path[0],
         "causal" if causal else "full"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(done.stdout.split()[-1]) / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python bench/attention.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="T=256, D=64, one repeat")
    parser.add_argument("--lengths", type=int, nargs="+",
                        default=[256, 512, 1024, 2048, 4096])  # fmt: skip
    parser.add_argument("--features", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--causal", nargs="+", default=["causal", "full"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--json", help="write the records to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.features, args.threads = [256], [64], [1]
        args.dtypes, args.causal, args.repeats = ["float32"], ["causal"], 1
    print(f"cpu: {_runtime.cpu_model()}; torch {torch.__version__}; B={BATCH}, "
          f"H={HEADS}; forward + backward, best of {args.repeats}")  # fmt: skip
    records = []
    before = torch.get_num_threads()
    cells = itertools.product(args.threads, args.dtypes, args.features, args.causal,
                              args.lengths)  # fmt: skip
    try:
        for threads, dtype_name, features, causal, length in cells:
            torch.set_num_threads(threads)
            dtype = getattr(torch, dtype_name)
            best = time_cell(length, features, dtype, causal == "causal", args.repeats)
            record = {"threads": threads, "dtype": dtype_name, "features": features,
                      "causal": causal, "length": length}  # fmt: skip
            record.update({name: seconds * 1e3 for name, seconds in best.items()})
            flash, ours = best["flash p=0"], best["cdropout p=0.1"]
            record["vs flash"] = ours / flash
            record["speedup vs torch"] = best["torch p=0.1"] / ours
            line = (
                f"{threads}t {dtype_name:8} D={features:3} {causal:6} T={length:5}  "
                f"flash p=0 {flash * 1e3:8.1f} ms  torch p=0.1 "
                f"{best['torch p=0.1'] * 1e3:8.1f} ms  cdropout p=0.1 "
                f"{ours * 1e3:8.1f} ms ({record['vs flash']:.2f}x flash, "
                f"{record['speedup vs torch']:.2f}x faster than torch)"
            )
            if args.memory:
                for name in CONTENDERS:
                    record[f"peak MiB {name}"] = peak_mib(
                        name, length, features, dtype, threads, causal == "causal"
                    )
                line += "  peak MiB " + " / ".join(
                    f"{record[f'peak MiB {name}']:.0f}" for name in CONTENDERS
                )
            print(line, flush=True)
            records.append(record)
    finally:
        torch.set_num_threads(before)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(records, file, indent=1)


if __name__ == "__main__":
    main()
