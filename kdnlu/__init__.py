"""kdnlu: multi-task NLU training and knowledge distillation of teacher ensembles (MT-DNN-KD)."""

import os

# Weights and data are never fetched at run time: a missing local file is an error, not a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__version__ = "0.1.0"
