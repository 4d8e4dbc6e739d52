"""Text as tokens: the exactly invertible byte-level BPE tokenizer and the integer GPT that
predicts the next token (parallel scoring for the encoder, a KV cache for the decoder).
"""
