"""Fine-tuning defaults: the BERT paper's recipe (AdamW, 10% warmup then linear decay, 3 epochs,
batch 32, lr in 2e-5..5e-5), three seeds. `bertjax finetune` loads this file unless --config
names another; override any field on the command line:

  bertjax finetune --task=mr --init=workdirs/proof_mini --workdir=/tmp/mr \\
      --config.data_dir=../shared/data/tasks --config.learning_rate=1e-4
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    # --- Data (see bertjax/finetune/tasks.py and records.py) ------------------------------
    config.data_dir = "../shared/data/tasks"  # presets (mr, trec, rte, chunking): DIR/NAME/*.jsonl
    config.train_file = ""  # --task=jsonl|squad, or to replace a preset's file
    config.eval_file = ""
    config.dev_file = ""  # examples that choose the epoch (select_epoch="best"); read as eval is
    # --task=jsonl: classification, multilabel, regression, tagging, qa or multiple_choice
    config.kind = ""
    config.text_fields = ""  # comma-separated: "text" or "text_a,text_b" ("" = the preset's)
    # "" = "label" (multilabel: a JSON list of label names); "annotations": Label Studio's JSON
    # export (the class chosen in each task's newest annotation, its text fields in its data)
    config.label_field = ""
    config.tokens_field = ""  # tagging: "" = "tokens"
    config.tags_field = ""  # tagging: "" = "tags"
    # tagging from character spans of the text field instead of tokens and tags: doccano's
    # [[start, end, label]], objects with start/end/label, or CLUENER's {label: {entity: [[s, e]]}};
    # "annotations": Label Studio's JSON export (tasks, the text in each task's data)
    config.spans_field = ""
    # multiple_choice: the field holding a JSON list of the choices ("" = "choices"; or ARC's
    # {"text": [...], "label": [...]}), or one field per choice, comma-separated
    # ("ending0,ending1,ending2,ending3": SWAG's columns).
    config.choices_field = ""
    # A CSV/TSV file without a header row (LCQMC, GLUE's CoLA): its columns' names, comma-
    # separated, e.g. "text_a,text_b,label"; "" = the first row names them.
    config.column_names = ""
    # The task files' encoding, a Python codec: gb18030 (Chinese GBK), big5, ...; "" = UTF-8
    # (UTF-16/32 by their byte-order mark).
    config.text_encoding = ""
    config.max_seq_length = 128
    config.doc_stride = 128  # QA: step between windows over a long context
    config.max_query_length = 64  # QA: question wordpieces kept
    config.max_answer_length = 30  # QA: longest answer, in wordpieces
    config.n_best = 20  # QA: start/end candidates considered per window
    # QA whose training data has questions without an answer (SQuAD 2.0): answer "" where the
    # null score ([CLS] as start and end) beats the best span's by more than this.
    config.null_score_diff_threshold = 0.0

    # --- Recipe -----------------------------------------------------------------------------
    config.learning_rate = 5e-5
    config.num_epochs = 3
    config.batch_size = 32
    # Microbatches per step, their loss gradients summed (the batch's gradient in the memory of
    # batch_size/grad_accum_steps rows: BERT-large at seq 512 on a smaller accelerator).
    config.grad_accum_steps = 1
    config.eval_batch_size = 64
    config.warmup_fraction = 0.1
    config.weight_decay = 0.01
    config.max_grad_norm = 1.0
    # Layer-wise learning-rate decay, ELECTRA's factors: encoder layer i of L learns at
    # lr * decay**(L + 1 - i), the embeddings at lr * decay**(L + 2), the head at lr (1.0 = off;
    # ELECTRA fine-tunes with 0.8).
    config.layerwise_lr_decay = 1.0
    # Classification features: "cls" (Hugging Face's pooler on [CLS]) or "mean" (mean of the
    # final hidden states over real tokens; for encoders pretrained without a [CLS] objective).
    config.pooling = "cls"
    # The head of classification, multilabel, regression and multiple choice: "pooler" (BERT's:
    # the encoder's tanh pooler, trained by next-sentence prediction, then a dense layer) or
    # "gelu" (Hugging Face's Electra and RoFormer classes': a fresh dense layer and GELU on the
    # first token, then a dense layer). A rotary or factorised encoder's classifier exports to
    # Hugging Face only with "gelu" (docs/finetune.md).
    config.sequence_head = "pooler"
    # Multilabel: a label is predicted where its probability, sigmoid(logit), is over this
    # (scores and `bertjax predict`; a saved model keeps it). Choose it on a dev split
    # (docs/finetune.md); `bertjax predict --multilabel_threshold=P` applies another later.
    config.multilabel_threshold = 0.5
    # Dropout while fine-tuning, whatever the pretraining used (a short pretraining may run
    # without): BERT's 0.1 for every released checkpoint.
    config.hidden_dropout_prob = 0.1
    config.attention_probs_dropout_prob = 0.1
    config.dtype = "float32"  # compute dtype; "bfloat16" on accelerators
    # Keep each seed's fine-tuned model in WORKDIR/seed_<s>/model (`bertjax export` turns it
    # into a Hugging Face BertFor<Task> directory); False keeps only the scores.
    config.save_model = True
    # Which epoch a seed keeps (its scores, its saved model): "last", or "best", the epoch with
    # the highest dev score (accuracy; Pearson for regression; F1 for tagging and QA). The dev
    # split is dev_file or dev_fraction of the training examples (a fixed split, the same for
    # every seed; QA moves whole contexts), never the eval split, whose score would then be
    # overstated.
    config.select_epoch = "last"
    config.dev_fraction = 0.0
    config.seeds = "0,1,2"  # one full fine-tune per seed; median and spread are reported
    config.log_every = 50  # steps between progress lines in a log file (a terminal: a bar)
    # Steps between saves of a seed's progress (WORKDIR/seed_<s>/checkpoint, deleted when the
    # seed ends), so a stopped fine-tune resumes mid-seed; also saved on SIGTERM / Ctrl-C. 0: only
    # then.
    config.checkpoint_every = 1000
    return config
