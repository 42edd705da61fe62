"""`bertjax show-masking` (bertjax/masking_preview.py): a run's first masked instances as text."""

import itertools
import logging

import numpy as np
import pytest

from bertjax import cli, masking_preview
from bertjax.data.corpus import SAMPLE_CORPUS

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s"]


class _Tokenizer:
    vocab = VOCAB
    mask_id = VOCAB.index("[MASK]")


def test_an_instance_shows_each_predicted_position_as_input_and_original():
    """[MASK], a random token and a kept one at three predicted positions; padding not shown."""
    ids = [2, 5, 4, 7, 9, 8, 5, 9, 10, 3, 0, 0]  # [CLS] the [MASK] sat mat on the mat ##s [SEP]
    batch = {
        "input_ids": np.array([ids]),
        "input_mask": np.array([[1] * 10 + [0, 0]]),
        "masked_lm_positions": np.array([[2, 4, 6, 0]]),
        "masked_lm_ids": np.array([[6, 8, 5, 0]]),  # cat, on, the
        "masked_lm_weights": np.array([[1.0, 1.0, 1.0, 0.0]]),
        "next_sentence_labels": np.array([1]),
    }
    shown = masking_preview.shown_instance(batch, 0, _Tokenizer())
    assert shown.tokens == "[CLS] the [[MASK]:cat] sat [mat:on] on [the:the] mat ##s [SEP]"
    assert shown.counts == (
        "3 of 10 tokens predicted (1 [MASK], 1 random, 1 kept); segment B is a random segment"
    )
    batch |= {"next_sentence_weights": np.array([0.0])}  # a packed row: no pair
    assert masking_preview.shown_instance(batch, 0, _Tokenizer()).counts.endswith(
        masking_preview.PACKED_NSP_NOTE
    )


def test_show_masking_shows_whole_words_masked_as_training_masks_them(tmp_path, capsys, caplog):
    """On the sample corpus with whole-word masking: a predicted ##piece's word is predicted
    whole (its first piece too), as the masking's own tests require of training's batches.
    More instances asked than the batch holds: the batch, said."""
    argv = ["bertjax", "show-masking", "--config=configs/cpu_smoke.py", "--num_instances=9",
            f"--config.corpus={SAMPLE_CORPUS.replace('*', 'inaugural')}",
            f"--config.cache_dir={tmp_path}", "--config.vocab_size=2000",
            "--config.max_seq_length=64", "--config.max_predictions_per_seq=10",
            "--config.masking=whole_word", "--config.batch_size=8"]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="absl"):
        cli.main(argv)
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split(" ") for line in lines if line.startswith("[CLS] ")]
    assert len(rows) == 8 and sum(line.startswith("instance ") for line in lines) == 8
    assert "The first batch holds 8 instances (batch_size): showing them all" in caplog.text
    assert masking_preview.ELECTRA_NOTE not in lines  # a BERT run
    continuations = 0
    for tokens in rows:
        for before, token in itertools.pairwise(tokens):
            if token.startswith("[") and token.endswith("]") and ":##" in token:
                if before in ("[CLS]", "[SEP]"):  # a segment cut mid-word: its start is not here
                    continue
                continuations += 1
                assert before.startswith("[") and ":" in before, (before, token)
    assert continuations > 0  # whole words of several pieces were masked in these instances


def test_an_electra_run_says_what_its_discriminator_sees():
    shown = [masking_preview.ShownInstance("a b", "1 of 2")]
    lines = masking_preview.format_shown(shown, "electra")
    assert lines[1] == masking_preview.ELECTRA_NOTE and lines[-1] == "a b"


def test_num_instances_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bertjax", "show-masking", "--config=configs/cpu_smoke.py", "--num_instances=0"])
    assert "--num_instances=0 must be >= 1" in capsys.readouterr().err
