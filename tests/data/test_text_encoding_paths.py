"""A corpus in GB18030 (Chinese GBK's superset) given with text_encoding reads, on every path
that reads corpora (`bertjax vocab`, the in-memory and streaming pipelines, `bertjax prepare`),
exactly as its UTF-8 copy does. Reference: the same documents written as UTF-8."""

import gzip
import itertools
import json

import numpy as np
import pytest

from bertjax import config as base_config
from bertjax.data import pipeline, prepare, vocab
from bertjax.data.corpus import SAMPLE_CORPUS_ZH
from bertjax.data.masking import MaskingSpec
from bertjax.data.spec import DataSpec

ENCODING = "gb18030"


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Two chapters of 西游记 per file, 3 files, as UTF-8 and as GB18030 JSON Lines."""
    root = tmp_path_factory.mktemp("encodings")
    with gzip.open(SAMPLE_CORPUS_ZH.replace("*", "xiyouji"), "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in itertools.islice(f, 6)]
    for name, encoding in (("utf8", "utf-8"), ("legacy", ENCODING)):
        (root / name).mkdir()
        for i in range(3):
            lines = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts[i::3])
            (root / name / f"part-{i}.jsonl").write_bytes(lines.encode(encoding))
    return root


def _vocab(corpora, name: str, **kwargs):
    out = corpora / f"vocab-{name}"
    vocab.run_vocab(str(corpora / name / "*.jsonl"), size=1500, out_dir=out, **kwargs)
    return out


def test_vocab_pipelines_and_prepare_read_it_as_its_utf8_copy(corpora):
    utf8_vocab = _vocab(corpora, "utf8")
    legacy_vocab = _vocab(corpora, "legacy", text_encoding=ENCODING)
    assert (legacy_vocab / "vocab.txt").read_text() == (utf8_vocab / "vocab.txt").read_text()
    batches = {}
    for name, streaming in itertools.product(("utf8", "legacy"), (False, True)):
        config = base_config.defaults()
        encoding = ENCODING if name == "legacy" else ""
        config.update(corpus=str(corpora / name / "*.jsonl"), vocab_dir=str(utf8_vocab),
                      max_seq_length=64, max_predictions_per_seq=10, dupe_factor=1,
                      streaming=streaming, text_encoding=encoding)  # fmt: skip
        data = pipeline.build_pretraining_data(DataSpec.from_config(config))
        masking = MaskingSpec.from_config(config)
        dataset = pipeline.make_dataset(
            data.source, masking, data.tokenizer, global_batch_size=8, seed=0
        )
        batches[name, streaming] = next(dataset.as_numpy_iterator())
    for streaming in (False, True):
        for key, value in batches["utf8", streaming].items():
            np.testing.assert_array_equal(batches["legacy", streaming][key], value, err_msg=key)
    manifests = [
        prepare.run_prepare(str(corpora / name / "*.jsonl"), utf8_vocab, corpora / f"prep-{name}",
                            max_seq_length=64, dupe_factor=1, num_workers=1, **kwargs)
        for name, kwargs in (("utf8", {}), ("legacy", {"text_encoding": ENCODING}))
    ]  # fmt: skip
    assert manifests[1]["num_instances"] == manifests[0]["num_instances"] > 0
    assert manifests[1]["settings"]["text_encoding"] == ENCODING
    for shard in sorted((corpora / "prep-utf8").glob("instances-*")):
        assert (corpora / "prep-legacy" / shard.name).read_bytes() == shard.read_bytes()
