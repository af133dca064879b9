"""Vocabulary-level distillation of masked language models (``kdnlu-mlm``).

``corpus`` masks unlabeled sentences once (``kdnlu.mlm.corpus``); ``head`` fits an MLM output
layer where a checkpoint has none (``kdnlu.mlm.models``); ``teach`` writes the teacher's top-k
distributions to logit stores and measures top-k fidelity (``kdnlu.mlm.teach``); ``distil``
trains a smaller student against them (``kdnlu.mlm.distil``). docs/vocab_distillation.md walks
through it.
"""
