"""Entropy coding, knowing nothing of files: the range coder over integer frequency tables
(constriction) and the classical backends (PPMd, xz, zstd) for a codec's inner streams.
"""
