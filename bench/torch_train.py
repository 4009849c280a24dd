"""A CPU training step with torch.nn's dropout, with cdropout's (swap_dropout), and
with no dropout at all, eager and under torch.compile, on 1 and 2 threads.

    python bench/torch_train.py [--quick | --eager] [--steps 20] [--threads 1 2]

Models: an MLP (1024 inputs, 3 hidden layers of 1024 with ReLU and Dropout(0.5) after
each, 10 classes, batch 512) and a small convolutional net (two 3x3 convolutions of 32
and 64 channels on 3x32x32 images with ReLU and Dropout2d(0.2) after each, batch 64),
each also with its dropouts before the ReLUs (the same function). A step is forward,
cross-entropy, backward and an SGD update. Prints the median step time of each
variant, timed in interleaved rounds, and its ratio to the step without dropout;
"scale only" puts a multiply into a new tensor in the dropout's slot, the floor of any
dropout that is not in place; "cdropout" is the torch.nn model after swap_dropout, which
fuses each ReLU with the dropout after it, "cdropout unfused" after
swap_dropout(model, fuse=False). --eager: eager steps only; --quick: those, 5 steps.

Each cell also gives the variant's minor page faults per step. glibc's malloc returns
large freed blocks to the OS and faults them in again when they are next allocated, at
about 1 us per 4 KiB page on this project's Xeon; which tensors it catches shifts with
every allocation, so these faults weigh on variants at random. --steady-malloc keeps
freed memory in the process (mallopt: no mmap below 32 MiB, no trimming), as jemalloc
or tcmalloc would, so that the ratios measure the dropouts and not the allocator.
"""

import argparse
import ctypes
import resource
import statistics
import time

import torch

import cdropout.torch as ct
from cdropout import _runtime


def mlp(dropout, dropout_first=False):
    layers, width = [], 1024
    for _ in range(3):
        pair = [dropout(0.5), torch.nn.ReLU()]
        order = pair if dropout_first else pair[::-1]
        layers += [torch.nn.Linear(width, 1024), *order]
    return torch.nn.Sequential(*layers, torch.nn.Linear(1024, 10)), (512, 1024)


def mlp_dropout_first(dropout):
    # the same function to the bit (dropout scales by s >= 0 or zeroes, and
    # relu(s * x) = s * relu(x)), but the next Linear saves the ReLU's output, from
    # which backward recomputes the ReLU's mask: nothing else is saved for it
    return mlp(dropout, dropout_first=True)


def convnet(dropout, dropout_first=False):
    def block(conv):
        pair = [dropout(0.2), torch.nn.ReLU()]
        return [conv, *(pair if dropout_first else pair[::-1])]

    model = torch.nn.Sequential(
        *block(torch.nn.Conv2d(3, 32, 3, padding=1)),
        *block(torch.nn.Conv2d(32, 64, 3, padding=1)),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10),
    )  # fmt: skip
    return model, (64, 3, 32, 32)


def convnet_dropout_first(dropout):
    return convnet(dropout, dropout_first=True)


class Scale(torch.nn.Module):
    """Multiplies by 1/(1-p) into a new tensor: the memory traffic of any dropout that
    is not in place, with no mask at all (the floor of the dropout slot)."""

    def __init__(self, p):
        super().__init__()
        self.scale = 1.0 / (1.0 - p)

    def forward(self, x):
        return x * self.scale


VARIANTS = {  # what stands in each model's dropout slot
    "no dropout": lambda kind: (lambda p: torch.nn.Identity()),
    "scale only": lambda kind: Scale,
    "torch.nn": lambda kind: kind,
    "cdropout": None,  # the torch.nn model after swap_dropout (ReLU, Dropout fused)
    "cdropout unfused": None,  # after swap_dropout(model, fuse=False)
}


def build(make, kind, variant):
    torch.manual_seed(0)
    if variant.startswith("cdropout"):
        model, shape = make(kind)
        ct.swap_dropout(model, fuse=variant == "cdropout")
    else:
        model, shape = make(VARIANTS[variant](kind))
    return model, shape


def stepper(model, shape, compiled):
    """One training step of `model` as a callable, compiled or not."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(shape)
    target = torch.randint(0, 10, (shape[0],))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()

    run = torch.compile(step) if compiled else step
    for _ in range(3):  # warm up (and compile)
        run()
    return run


def steady_malloc():
    """glibc's malloc set to keep freed memory for reuse: blocks up to 32 MiB (its
    largest mmap threshold) come from the heap, and the heap is never trimmed."""
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    if not hasattr(libc, "mallopt") or not (
        libc.mallopt(m_mmap_threshold, 32 * 2**20)
        and libc.mallopt(m_trim_threshold, 2**31 - 1)
    ):
        raise SystemExit("--steady-malloc needs glibc's mallopt")


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_steps(runs, steps, rounds=5):
    """Median seconds per step of each callable, and its mean minor page faults per
    step, timed in interleaved rounds, so that the machine's drift (this project's VM
    varies by 10-30% over a minute) weighs on every variant alike."""
    times = {name: [] for name in runs}
    faults = dict.fromkeys(runs, 0)
    per_round = max(1, steps // rounds)
    for _ in range(rounds):
        for name, run in runs.items():
            for _ in range(per_round):
                before = minor_faults()
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
                faults[name] += minor_faults() - before
    return {
        name: (statistics.median(t), faults[name] / len(t)) for name, t in times.items()
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="eager only, 5 steps")
    parser.add_argument("--eager", action="store_true", help="eager only")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--steady-malloc", action="store_true", help="keep freed memory (see above)"
    )
    args = parser.parse_args(argv)
    if args.steady_malloc:
        steady_malloc()
    steps = 5 if args.quick else args.steps
    malloc = "steady (mallopt)" if args.steady_malloc else "glibc's defaults"
    print(f"cpu: {_runtime.cpu_model()}; torch {torch.__version__}; malloc {malloc}")
    print(
        "median ms per training step (ratio to the step without dropout, "
        "minor page faults per step)"
    )
    models = {
        "MLP": (mlp, torch.nn.Dropout),
        "MLP, dropout before ReLU": (mlp_dropout_first, torch.nn.Dropout),
        "convnet": (convnet, torch.nn.Dropout2d),
        "convnet, dropout before ReLU": (convnet_dropout_first, torch.nn.Dropout2d),
    }
    for name, (make, kind) in models.items():
        for compiled in (False,) if args.quick or args.eager else (False, True):
            for threads in args.threads:
                torch.set_num_threads(threads)
                torch._dynamo.reset()  # each group its own compilations
                runs = {v: stepper(*build(make, kind, v), compiled) for v in VARIANTS}
                times = time_steps(runs, steps)
                base = times["no dropout"][0]
                cells = "  ".join(
                    f"{v} {t * 1e3:7.2f} ({t / base:.2f}x, {f:5.0f})"
                    for v, (t, f) in times.items()
                )
                how = "compiled" if compiled else "eager"
                print(f"{name:28} {how:8} {threads}t  {cells}", flush=True)


if __name__ == "__main__":
    main()
