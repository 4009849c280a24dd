"""cdropout.torch.dropout against PyTorch's CPU dropout, eager and compiled.

    python bench/torch_ops.py [--quick] [--sizes 1e3 1e5 ...] [--threads 1 2]

For float32 and bfloat16, in place, into a new tensor, and into a new tensor from an
input that requires grad (the forward of a training step: autograd records the call),
on 1 and all usable threads (torch.set_num_threads, which cdropout.torch follows), one
process times, interleaved, the floor (a multiply by PyTorch, in place or into a new
tensor), PyTorch's torch.nn.functional.dropout eager and under torch.compile
(inductor; compiled once per dtype and layout with dynamic shapes), and
cdropout.torch.dropout with its default seed=None (a key from PyTorch's generator, as
torch.nn's dropout draws). Prints ns per element and each contender's ratio to
cdropout. Needs torch (and the torch extra).
"""

import argparse

import torch
import torch.nn.functional as F

import cdropout.torch as ct
from cdropout import _runtime, _timing

LAYOUTS = ("in place", "new output", "autograd")


def contenders(x, p, in_place, compiled):
    scale = 1 / (1 - p)
    found = [
        _timing.Contender(
            "floor", (lambda: x.mul_(scale)) if in_place else (lambda: x * scale)
        ),
        _timing.Contender("F.dropout", lambda: F.dropout(x, p, True, in_place)),
        _timing.Contender("F.dropout compiled", lambda: compiled(x)),
        _timing.Contender("cdropout.torch", lambda: ct.dropout(x, p, True, in_place)),
    ]
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1e3 and 1e5 only")
    parser.add_argument("--sizes", type=float, nargs="+")
    parser.add_argument("--threads", type=int, nargs="+")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1e3, 1e5] if args.quick else [1e3, 1e5, 1e6, 1e7, 1e8])
    thread_counts = args.threads or sorted({1, _runtime.USABLE_CPUS})
    p = 0.5
    print(f"cpu: {_runtime.cpu_model()}; torch {torch.__version__}; p = {p}")
    print("ns per element (ratio to cdropout.torch)")
    for dtype in (torch.float32, torch.bfloat16):
        for layout in LAYOUTS:
            in_place = layout == "in place"
            print(f"\n{dtype}, {layout}")
            names = ["floor", "F.dropout", "F.dropout compiled", "cdropout.torch"]
            print(f"{'size':>10} {'threads':>7}" + "".join(f"{n:>24}" for n in names))
            for threads in thread_counts:
                torch.set_num_threads(threads)
                torch._dynamo.reset()  # each group its own compilations
                compiled = torch.compile(
                    lambda t, in_place=in_place: F.dropout(t, p, True, in_place),
                    dynamic=True,
                )
                for size in sizes:
                    x = torch.randn(int(size)).to(dtype)
                    x.requires_grad_(layout == "autograd")
                    found = contenders(x, p, in_place, compiled)
                    compiled(x)  # compiles outside the timing
                    best = _timing.best_times(found, x.numel())
                    ours = best["cdropout.torch"]
                    cells = [
                        f"{best[n] / x.numel() * 1e9:9.3f} ({best[n] / ours:6.1f}x)"
                        for n in names
                    ]
                    row = "".join(f"{c:>24}" for c in cells)
                    print(f"{int(size):>10} {threads:>7}{row}", flush=True)


if __name__ == "__main__":
    main()
