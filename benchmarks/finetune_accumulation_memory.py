"""Memory of a fine-tuning step by `grad_accum_steps`: XLA's memory analysis of the compiled step
(nothing runs, so a size that would not fit still measures), one device.

  python -m benchmarks.finetune_accumulation_memory --model=base --seq_len=512 --batch_size=32

Prints, for each number of microbatches, the step's temporaries (activations, gradients) and
its arguments (parameters, optimizer state, batch), in GiB.
"""

import argparse
import time

import jax
import numpy as np

from bertjax.config import defaults, set_model_size
from bertjax.finetune import features, inference, steps, tasks
from bertjax.models.bert import BertConfig
from bertjax.train_state import init_train_state
from configs.finetune import get_config

VOCAB_SIZE = 30522  # BERT's uncased English vocabulary


def step_memory(bert_config, seq_len: int, batch_size: int, accum_steps: int) -> dict:
    """XLA's memory analysis of one classification step on one device."""
    task = tasks.TaskData("bench", "classification", ["a", "b"], [], [], "dev")
    rows = features.Encoded(input_ids=[[2, 3]], segment_ids=[[0, 0]], labels=[0])
    config = get_config()
    config.update(batch_size=batch_size, max_seq_length=seq_len, grad_accum_steps=accum_steps)
    compiled = steps.compile_task(
        inference.Prepared(task, rows, rows), bert_config, config, jax.devices()[:1]
    )
    state = jax.eval_shape(
        lambda: init_train_state(compiled.setup, compiled.make_model, compiled.tx, 0)
    )
    tokens = np.zeros((batch_size, seq_len), np.int32)
    batch = {"input_ids": tokens, "segment_ids": tokens, "input_mask": tokens + 1,
             "labels": tokens[:, 0], "weights": np.ones(batch_size, np.float32)}  # fmt: skip
    start = time.perf_counter()
    memory = compiled.train_step.lower(state, batch, jax.random.key(0)).compile().memory_analysis()
    return {
        "temporaries_gib": memory.temp_size_in_bytes / 2**30,
        "arguments_gib": memory.argument_size_in_bytes / 2**30,
        "compile_seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--accum_steps", default="1,2,4,8")
    args = parser.parse_args()
    bert_config = BertConfig.from_config(set_model_size(defaults(), args.model), VOCAB_SIZE)
    for accum in (int(s) for s in args.accum_steps.split(",")):
        memory = step_memory(bert_config, args.seq_len, args.batch_size, accum)
        print(
            f"{args.model} seq {args.seq_len} batch {args.batch_size} grad_accum_steps={accum}: "
            f"temporaries {memory['temporaries_gib']:.2f} GiB, arguments "
            f"{memory['arguments_gib']:.2f} GiB (compiled in {memory['compile_seconds']:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
