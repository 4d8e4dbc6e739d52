from nncodec.cli import run

run()
