from nncodec.cli.main import run

run()
