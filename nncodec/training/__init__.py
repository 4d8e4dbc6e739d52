"""Training code (needs the `train` extra: torch, tokenizers). Never imported when coding."""
