"""Training the probabilistic circuits (hidden Chow-Liu trees) by EM, on CPU or GPU, and
exporting them with a model card.
"""
