"""Logs as columns: lines to templates and typed columns, integer coding, known line formats
(formats/) and reversible rewrites taken out before the columns (rewrites/).
"""
