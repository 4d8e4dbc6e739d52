"""Images as pixels: image files (PNG/PNM/BMP/TIFF) to pixels and back, the next-pixel network,
the probabilistic circuit and the reversible colour transforms.
"""
