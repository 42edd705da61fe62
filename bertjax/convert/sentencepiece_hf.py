"""A SentencePiece unigram vocabulary as a Hugging Face fast tokenizer (`tokenizer.json`), so an
exported run with such a vocabulary tokenizes in transformers as it trained.

Built with HF `tokenizers` from the model file itself (its pieces and scores, its normaliser's
precompiled character map), the layout transformers' own converters use for SentencePiece
models: Metaspace pre-tokenizer, `[CLS] A [SEP] (B [SEP])`, the special tokens matched in text
([MASK] absorbing the space before it, as the masks of `bertjax fill-mask`). On the 1,997
paragraphs of the embedded corpus's speeches (2,000-piece vocabulary) it gives bertjax's ids for
1,993; the other 4 segment differently with exactly the same score, a tie the two libraries
break differently (tests/convert/test_sentencepiece_hf.py). On 2,615 paragraphs of Python's
documentation, with a vocabulary trained on them, 7 differed (not checked for ties).
SentencePiece BPE models are not converted.
"""

from __future__ import annotations

import os

from etils import epath

from bertjax.data import lookups
from bertjax.errors import UserError

UNIGRAM = 1  # sentencepiece_model.proto TrainerSpec.ModelType


def unigram_tokenizer(model_path: str | os.PathLike):
    """The `tokenizers.Tokenizer` of the SentencePiece unigram model at `model_path`."""
    import tokenizers
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers, processors

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(epath.Path(model_path).read_bytes())  # local or gs://
    if proto.trainer_spec.model_type != UNIGRAM:
        raise UserError(
            f"{model_path} is a SentencePiece BPE model, which export does not convert to a "
            "Hugging Face tokenizer; train the vocabulary with --model_type=unigram"
        )
    pieces = [(piece.piece, piece.score) for piece in proto.pieces]
    tok = tokenizers.Tokenizer(tokenizers.models.Unigram(pieces, proto.trainer_spec.unk_id, False))
    charsmap = proto.normalizer_spec.precompiled_charsmap
    # NFC first: Precompiled leaves decomposed (NFD) text uncomposed where SentencePiece composes
    # it (tokenizers issues 2116, 2334). Measured on 123 texts in NFC/NFD/NFKD forms: 29 (cased)
    # and 35 (uncased) tokenized otherwise than SentencePiece without it (Vietnamese, Korean,
    # Japanese, French), 5 with (equal-score ties, a stack of combining marks NFC reorders).
    composed = [normalizers.NFC()] if charsmap and "nfkc" in proto.normalizer_spec.name else []
    tok.normalizer = normalizers.Sequence(
        [
            *composed,
            normalizers.Precompiled(charsmap),
            normalizers.Replace(Regex(" {2,}"), " "),  # remove_extra_whitespaces
            normalizers.Strip(),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    ids = {piece: i for i, (piece, _) in enumerate(pieces)}
    cls, sep = lookups.CLS, lookups.SEP
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, ids[cls]), (sep, ids[sep])],
    )
    plain = (lookups.PAD, lookups.UNK, cls, sep)
    tok.add_special_tokens(
        [AddedToken(t, special=True) for t in plain]
        + [AddedToken(lookups.MASK, lstrip=True, special=True)]
    )
    return tok
