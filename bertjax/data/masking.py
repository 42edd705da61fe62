"""Dynamic masked-LM masking as TensorFlow ops (BERT's 80/10/10 rule), one example at a time.

Works on a single unbatched example so it maps before `batch` in tf.data; every random choice
comes from stateless ops keyed by a [2] seed, so a mask is a pure function of (example, seed)
and is identical eagerly and inside a tf.data graph.
"""

import tensorflow as tf

MASK_PROB = 0.8  # of the selected positions: replaced by [MASK]
RANDOM_PROB = 0.1  # replaced by a random token; the remaining 10% keep the original token


def _eligible(input_ids: tf.Tensor, input_mask: tf.Tensor, special_ids: tf.Tensor) -> tf.Tensor:
    """[L] bool: real (mask == 1) and not a special token."""
    is_special = tf.reduce_any(input_ids[:, tf.newaxis] == special_ids[tf.newaxis, :], axis=1)
    return tf.logical_and(tf.equal(input_mask, 1), tf.logical_not(is_special))


def _num_to_predict(
    num_eligible: tf.Tensor, masked_lm_prob: float, max_predictions: int
) -> tf.Tensor:
    """min(P, max(1, round(n * prob))), or 0 when nothing is eligible; scalar int32."""
    # tf.round rounds half to even, like Python's round() in google's reference code.
    wanted = tf.cast(tf.round(tf.cast(num_eligible, tf.float32) * masked_lm_prob), tf.int32)
    count = tf.minimum(max_predictions, tf.maximum(1, wanted))
    return tf.where(num_eligible > 0, count, 0)


def _pad_to(values: tf.Tensor, length: int) -> tf.Tensor:
    """Right-pads a 1-D tensor with zeros to the static `length`."""
    padded = tf.pad(values, [[0, length - tf.shape(values)[0]]])
    return tf.ensure_shape(padded, [length])


def mask_tokens(
    input_ids: tf.Tensor,
    input_mask: tf.Tensor,
    seed: tf.Tensor,
    *,
    masked_lm_prob: float,
    max_predictions_per_seq: int,
    special_ids: tf.Tensor,
    mask_id: int,
    random_token_ids: tf.Tensor,
) -> dict[str, tf.Tensor]:
    """Selects and corrupts masked-LM positions of one example.

    Args:
      input_ids: [L] int32 token ids.
      input_mask: [L] int32, 1 on real tokens, 0 on padding.
      seed: [2] int32/int64 stateless seed; equal seeds give equal masks.
      masked_lm_prob: fraction of eligible tokens (real, not special) to select.
      max_predictions_per_seq: P, cap on selected positions and length of the outputs.
      special_ids: [S] ids never selected ([CLS], [SEP], [PAD], ...).
      mask_id: id of [MASK].
      random_token_ids: [R] ids a selected token may be replaced with (no special ids).

    Returns:
      ``input_ids`` [L] int32 with selected positions corrupted (80% [MASK], 10% random,
      10% unchanged); ``masked_lm_positions`` [P] int32 ascending, unique, 0-padded;
      ``masked_lm_ids`` [P] int32 original ids, 0-padded; ``masked_lm_weights`` [P] float32,
      1.0 on real predictions and 0.0 on padding.
    """
    input_ids = tf.convert_to_tensor(input_ids, tf.int32)
    input_mask = tf.convert_to_tensor(input_mask, tf.int32)
    special_ids = tf.convert_to_tensor(special_ids, tf.int32)
    random_token_ids = tf.convert_to_tensor(random_token_ids, tf.int32)
    select_seed, action_seed, replace_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=3)
    )

    eligible = _eligible(input_ids, input_mask, special_ids)
    num_eligible = tf.reduce_sum(tf.cast(eligible, tf.int32))
    num_predictions = _num_to_predict(num_eligible, masked_lm_prob, max_predictions_per_seq)

    # The top-k of i.i.d. uniform scores is a uniformly random k-subset of the eligible tokens
    # (ineligible ones score -1 and are never among the first num_predictions).
    scores = tf.random.stateless_uniform(tf.shape(input_ids), seed=select_seed)
    scores = tf.where(eligible, scores, -1.0)
    k = tf.minimum(max_predictions_per_seq, tf.shape(input_ids)[0])
    _, top = tf.math.top_k(scores, k=k)
    positions = tf.sort(top[:num_predictions])
    original_ids = tf.gather(input_ids, positions)

    action = tf.random.stateless_uniform(tf.shape(positions), seed=action_seed)
    random_ids = tf.gather(
        random_token_ids,
        tf.random.stateless_uniform(
            tf.shape(positions),
            seed=replace_seed,
            minval=0,
            maxval=tf.shape(random_token_ids)[0],
            dtype=tf.int32,
        ),
    )
    replacement = tf.where(
        action < MASK_PROB,
        tf.fill(tf.shape(positions), tf.constant(mask_id, tf.int32)),
        tf.where(action < MASK_PROB + RANDOM_PROB, random_ids, original_ids),
    )
    masked_input_ids = tf.tensor_scatter_nd_update(input_ids, positions[:, tf.newaxis], replacement)
    return {
        "input_ids": masked_input_ids,
        "masked_lm_positions": _pad_to(positions, max_predictions_per_seq),
        "masked_lm_ids": _pad_to(original_ids, max_predictions_per_seq),
        "masked_lm_weights": _pad_to(tf.ones_like(positions, tf.float32), max_predictions_per_seq),
    }
