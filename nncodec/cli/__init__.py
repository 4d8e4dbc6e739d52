"""The command line only: argument parsing, messages, exit codes (main), the file and stream jobs
(fileops), batches over worker processes or dask (batch) and ``nncodec bench`` (benchtool).
"""
