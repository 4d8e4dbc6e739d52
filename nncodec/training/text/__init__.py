"""Training the text model: data lists, the tokenizer, the float GPT (torch) and its export to the
exact integer model with a model card.
"""
