"""Reversible rewrites of a log block before its columns are built: values that can be
recomputed (human-readable sizes) or stored more compactly (Zeek UIDs as their random bits).
"""
