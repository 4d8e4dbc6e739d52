"""Exact integer arithmetic shared by every learned model: int8 matmuls and lookup tables (exact),
the row-wise work around them in numpy and C (rowops, _kernels.c), and online context mixing.
"""
