"""The library's spine: the container format, the engine that turns streams into frames and back,
content sniffing, errors, the model store and the framing helpers every codec shares.
"""
