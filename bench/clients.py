"""What dropout costs in real clients' training steps: a GPT written as small GPTs are
(nanoGPT's layout, examples/small_gpt.py), Hugging Face's GPT-2 and BERT (eager and
sdpa attention), and a flax nnx Transformer block, each with no dropout, with its
library's dropout, after swap_dropout, and after swap_dropout(functional=True).

    python bench/clients.py [--quick] [--steps 20] [--threads 1 2] [--compile]

A step is forward, loss, backward and an AdamW update (flax: an SGD update under
nnx.jit). Prints each variant's median step time, timed in interleaved rounds, and
its ratio to the step without dropout of the same model in the same process. Models:
GPT 4 layers x 128 wide, 4 heads, 16 sequences x 256 tokens, dropout 0.2 (nanoGPT's
character model, narrower); GPT-2 and BERT 4 layers x 128 wide, 4 heads, 16 x 128
tokens, dropout 0.1 (the issue's measurement); the flax block 128 wide, 4 heads,
16 x 128 tokens, rate 0.1. The transformers and flax rows need those libraries
(skipped without). --quick: tiny sizes and 2 steps, a smoke test; --compile: the
torch models under torch.compile too.
"""

import argparse
import pathlib
import sys

import torch
from torch_train import time_steps

import cdropout.torch as ct
from cdropout import _runtime

sys.path.append(str(pathlib.Path(__file__).parents[1] / "examples"))  # (after bench/)
from small_gpt import SmallGPT, sequences  # noqa: E402

SIZES = {  # (layers, width, heads, batch, length)
    "full": {"gpt": (4, 128, 4, 16, 256), "hf": (4, 128, 4, 16, 128)},
    "quick": {"gpt": (1, 32, 2, 2, 32), "hf": (1, 32, 2, 2, 32)},
}


def _variants(make, rate):
    """The four variants of a torch model: make(rate) builds one with that dropout."""
    return {
        "no dropout": make(0.0),
        "torch.nn": make(rate),
        "swap_dropout": ct.swap_dropout(make(rate)),
        "functional=True": ct.swap_dropout(make(rate), functional=True),
    }


def gpt(size):
    layers, width, heads, batch, length = size
    vocabulary = 65  # nanoGPT's characters

    def make(rate):
        torch.manual_seed(0)
        return SmallGPT(vocabulary, length, width, heads, layers, rate).train()

    generator = torch.Generator().manual_seed(1)
    indices, targets = sequences(batch, length, vocabulary, generator)
    return _variants(make, 0.2), lambda model: model(indices, targets)


def hugging_face(kind, attention, size):
    import transformers

    layers, width, heads, batch, length = size

    def make(rate):
        torch.manual_seed(0)
        if kind == "GPT-2":
            config = transformers.GPT2Config(
                n_layer=layers, n_embd=width, n_head=heads, n_positions=length,
                vocab_size=1024, resid_pdrop=rate, embd_pdrop=rate, attn_pdrop=rate,
            )  # fmt: skip
            auto = transformers.AutoModelForCausalLM
        else:
            config = transformers.BertConfig(
                num_hidden_layers=layers, hidden_size=width, num_attention_heads=heads,
                intermediate_size=4 * width, max_position_embeddings=length,
                vocab_size=1024, hidden_dropout_prob=rate,
                attention_probs_dropout_prob=rate,
            )  # fmt: skip
            auto = transformers.AutoModelForMaskedLM
        return auto.from_config(config, attn_implementation=attention).train()

    tokens = torch.randint(0, 1024, (batch, length))
    return _variants(make, 0.1), lambda m: m(input_ids=tokens, labels=tokens).loss


def torch_steps(models, loss, compiled):
    """One training step per variant, as callables, warmed up (and compiled)."""
    runs = {}
    for name, model in models.items():
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        forward = torch.compile(model) if compiled else model

        def step(forward=forward, optimizer=optimizer):
            optimizer.zero_grad(set_to_none=True)
            loss(forward).backward()
            optimizer.step()

        for _ in range(2):
            step()
        runs[name] = step
    return runs


def flax_steps(size):
    """The flax block's jitted steps (examples/flax_transformer.py): rate 0, flax's
    dropout, cdropout's (swapped)."""
    import jax
    from flax import nnx
    from flax_transformer import Block, sequences, step

    import cdropout.flax as cf

    _, width, heads, batch, length = size
    tokens, targets = sequences(batch, length, 1024, 1)

    def block(rate):
        return Block(1024, width, heads, rate, nnx.Rngs(0, dropout=1))

    models = {
        "no dropout": block(0.0),
        "flax": block(0.1),
        "swap_dropout": cf.swap_dropout(block(0.1)),
    }
    runs = {}
    for name, model in models.items():

        def run(model=model):
            jax.block_until_ready(step(model, tokens, targets, 1e-3))

        run()
        runs[name] = run
    return runs


def report(name, how, threads, times):
    base = times["no dropout"][0]
    cells = "  ".join(
        f"{variant} {t * 1e3:8.2f} ({t / base:.2f}x)"
        for variant, (t, _) in times.items()
    )
    print(f"{name:16} {how:8} {threads}t  {cells}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 steps")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--compile", action="store_true", help="also compiled")
    args = parser.parse_args(argv)
    sizes = SIZES["quick" if args.quick else "full"]
    steps = 2 if args.quick else args.steps
    rounds = 2 if args.quick else 5
    print(f"cpu: {_runtime.cpu_model()}; torch {torch.__version__}")
    print("median ms per training step (ratio to the step without dropout)")
    clients = {"GPT (nanoGPT)": lambda: gpt(sizes["gpt"])}
    try:
        import transformers  # noqa: F401

        for kind in ("GPT-2", "BERT"):
            for attention in ("eager", "sdpa"):
                clients[f"{kind} {attention}"] = (
                    lambda k=kind, a=attention: hugging_face(k, a, sizes["hf"])
                )
    except ImportError:
        print("(transformers not installed: its rows skipped)")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, build in clients.items():
            for compiled in (False, True) if args.compile else (False,):
                torch._dynamo.reset()
                models, loss = build()
                runs = torch_steps(models, loss, compiled)
                how = "compiled" if compiled else "eager"
                report(name, how, threads, time_steps(runs, steps, rounds))
    try:
        runs = flax_steps(sizes["hf"])
    except ImportError:
        print("(flax not installed: its row skipped)")
    else:  # (XLA's threads: its own choice, the machine's cores)
        report("flax block", "nnx.jit", _runtime.usable_cpus(), time_steps(runs, steps))


if __name__ == "__main__":
    main()
