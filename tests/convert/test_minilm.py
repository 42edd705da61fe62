"""The real reference: pretrained all-MiniLM-L6-v2 (6 layers, H384, 12 heads, uncased vocabulary of
30,522) imported into bertjax and compared with transformers on real sentences; its vocabulary
tokenised by bertjax and by BertTokenizerFast; import -> export -> from_pretrained round trip."""

import logging

import numpy as np
import pytest

from bertjax.convert import export_hf, import_checkpoint, load_model
from bertjax.data.corpus import SAMPLE_CORPUS, read_documents
from bertjax.data.sentences import split_sentences
from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.fill_mask import fill_mask
from tests.convert.helpers import ATOL, max_abs_diff, task_sentences, torch_outputs

NUM_SENTENCES = 96  # model parity on this many real sentences
BATCH = 1000  # sentences per tokenizer call

# Text that BERT's normaliser treats specially: accents, punctuation of every kind, CJK,
# control and format characters, odd whitespace, long words.
TRICKY = [
    "Café naïve façade — Ångström, Øre; São Paulo’s crème brûlée!",
    "İstanbul ΟΔΟΣ Straße ǅemal ﬁne ½ ³ ① ｆｕｌｌｗｉｄｔｈ",
    "東京タワーと北京烤鸭, 한국어 텍스트, 𠀋𡈽 and 豈更",
    "tab\there, nbsp\u00a0here, ideographic\u3000space, line\u2028sep, zero\u200bwidth",
    "ctrl\x00a\x07b\x1fc\x7fd\x91e\x9ff soft\u00adhyphen, bom\ufeffmark, repl\ufffdchar",
    "«quotes» „low“ ‹single› ¿qué? ¡sí! #hash $5 @at 50% a&b <tag> x^y `tick` a|b ~t",
    "don't U.S.A. e-mail 3.14 1,000 ... -- (paren) [bracket] {brace}",
    "a" * 101 + " " + "b" * 100 + " " + "é" * 101,
    "",
    "   ",
]


@pytest.fixture(scope="module")
def imported(minilm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm") / "imported"
    result = import_checkpoint(minilm_dir, out)
    return result, load_model(out)


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """Real sentences: MR's when shared/data is present, else the embedded corpus's."""
    texts = task_sentences()
    if not texts:
        texts = [s for doc in read_documents(SAMPLE_CORPUS) for s in split_sentences(doc)]
    return texts


def hf_batch(transformers, minilm_dir, texts):
    tokenizer = transformers.BertTokenizerFast(str(minilm_dir / "vocab.txt"), do_lower_case=True)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    return batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]


def mean_pooled(hidden, mask):
    """Sentence embeddings as sentence-transformers makes them: mean over tokens, L2-normalised."""
    mask = np.asarray(mask, np.float64)[..., None]
    pooled = (np.asarray(hidden, np.float64) * mask).sum(1) / mask.sum(1)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def test_import_reports_missing_heads(imported):
    result, _ = imported
    assert result.initialised == [
        "masked-LM head (cls.predictions)",
        "next-sentence head (cls.seq_relationship)",
    ]
    assert result.lowercase is True
    c = result.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads) == (6, 384, 12)
    assert (c.intermediate_size, c.vocab_size) == (1536, 30522)
    lines = result.lines()
    assert sum(line.startswith("initialised ") for line in lines) == 2
    assert "--config.init_from=" in lines[-1] and "--config.hidden_size=384" in lines[-1]


def test_hidden_states_and_sentence_embeddings_match_transformers(
    imported, minilm_dir, sentences, transformers
):
    _, model = imported
    texts = sentences[:NUM_SENTENCES]
    ids, segments, mask = hf_batch(transformers, minilm_dir, texts)
    reference = torch_outputs(
        transformers.BertModel.from_pretrained(minilm_dir), ids, segments, mask
    )
    expected = reference.last_hidden_state.numpy()
    ours = np.asarray(model.encode(ids, segments, mask)["sequence_output"])
    real = mask.astype(bool)  # padding: see test_round_trip_import_export_from_pretrained
    assert max_abs_diff(ours[real], expected[real]) < ATOL
    cosine = np.sum(mean_pooled(ours, mask) * mean_pooled(expected, mask), axis=-1)
    assert cosine.min() >= 0.9999


def test_round_trip_import_export_from_pretrained(
    imported, minilm_dir, tmp_path, transformers, caplog
):
    """The encoder comes back as it was; the heads `bertjax import` initialised for a source
    without them are left out of the export, so transformers names them as newly initialised
    (as it does for the source), and fill-mask and evaluate on the import say they are
    untrained (they returned random answers as if trained)."""
    result, _ = imported
    exported = export_hf(result.out_dir, tmp_path)
    assert exported.untrained_left_out == ("cls.predictions.", "cls.seq_relationship.")
    assert "left out: masked-LM head (cls.predictions), next-sentence head" in exported.lines()[-1]
    pretraining, info = transformers.BertForPreTraining.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert info["unexpected_keys"] == [] and info["error_msgs"] == []
    assert {key.split(".")[0] + "." + key.split(".")[1] for key in info["missing_keys"]} == {
        "cls.predictions",
        "cls.seq_relationship",
    }
    ids, segments, mask = hf_batch(transformers, minilm_dir, ["A round trip.", "Home again."])
    original = torch_outputs(
        transformers.BertModel.from_pretrained(minilm_dir), ids, segments, mask
    )
    exported = torch_outputs(transformers.BertModel.from_pretrained(tmp_path), ids, segments, mask)
    np.testing.assert_array_equal(
        exported.last_hidden_state.numpy(), original.last_hidden_state.numpy()
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer("Round trip")["input_ids"] == [101, 2461, 4440, 102]
    with caplog.at_level(logging.WARNING, logger="absl"):
        fill_mask(result.out_dir, ["A [MASK] trip."], top_k=1)
    assert "masked-LM head (cls.predictions) was initialised by `bertjax import`" in caplog.text
    assert "never trained, so its answers are random" in caplog.text


def test_tokenizer_ids_equal_bert_tokenizer_fast(minilm_dir, sentences, transformers):
    """Every MR and RTE sentence (or corpus sentence), plus hand-made hard cases."""
    texts = sentences + TRICKY
    vocab = minilm_dir / "vocab.txt"
    reference = transformers.BertTokenizerFast(str(vocab), do_lower_case=True)
    expected = reference(texts, add_special_tokens=False)["input_ids"]
    ours = WordPieceTokenizer(vocab, lowercase=True)
    ids = []
    for begin in range(0, len(texts), BATCH):
        ids += ours.encode(texts[begin : begin + BATCH])
    mismatches = [text for text, a, b in zip(texts, ids, expected, strict=True) if a != b]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, e.g. {mismatches[:3]}"
    assert len(texts) > 10_000 or not task_sentences()


def test_its_tokenizer_json_alone_gives_its_vocabulary_and_casing(minilm_dir, tmp_path):
    """The real tokenizer.json without vocab.txt or tokenizer_config.json: the same vocabulary
    and casing as the files it ships with."""
    import shutil

    source = tmp_path / "tokenizer_json_only"
    shutil.copytree(minilm_dir, source, ignore=shutil.ignore_patterns("vocab.txt", "tokenizer_c*"))
    result = import_checkpoint(source, tmp_path / "imported")
    assert result.lowercase is True
    assert (tmp_path / "imported" / "vocab.txt").read_bytes() == (
        minilm_dir / "vocab.txt"
    ).read_bytes()
