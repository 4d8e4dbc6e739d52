"""What every trainer shares: where the shared data lives, the argument parser, and the model card.

A model card is ``models/<id>.json`` beside ``models/<id>.safetensors``: the id, the file, its sha256
and size first (what a decoder checks), then what the trainer says about data, command, seed and
validation numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

#: ../shared/data beside the repository (training data; tests skip what needs it when absent)
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A trainer's parser, with its module docstring as the help text, as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def write_card(weights: Path, fields: dict) -> dict:
    """Write the card of the model file ``weights`` beside it and return it."""
    card = {
        "model_id": weights.stem,
        "file": weights.name,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "size_bytes": weights.stat().st_size,
        **fields,
    }
    weights.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card
