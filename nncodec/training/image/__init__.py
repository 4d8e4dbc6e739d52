"""Training the next-pixel image model (torch) and exporting it to the exact integer MLP with
a model card.
"""
