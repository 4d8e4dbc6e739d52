"""Compression levels: what ``-1`` … ``-19`` mean, per kind of input.

A level is a speed/size dial, as in zstd and xz; it changes only what the encoder tries, never the
format (any level's output decodes with the same decoder). BENCHMARKS.md has the measured table.

=======  ===========================  ======================  ===================  =================
level    text                         logs                    images               anything else
=======  ===========================  ======================  ===================  =================
1        zstd -1                      zstd -1                 zstd -1              zstd -1
2        zstd -3                      zstd -3                 zstd -3              zstd -3
3        zstd -9                      zstd -9                 zstd -9              zstd -9
4        zstd -19 --long              zstd -19 --long         zstd -19 --long      zstd -19 --long
5        zstd -19 --long              log codec (columns)     circuit (image-pc)   zstd -19 --long
         (5: every block also tries zstd -19, the smaller is kept)
6 … 9    language model               log codec               next-pixel model     zstd -19 --long
10 … 19  as 6, and every block also tries zstd -19 (the smaller is kept)
=======  ===========================  ======================  ===================  =================

The default is ``DEFAULT_LEVEL`` (6: the learned codecs, as nncodec has always done); ``-0`` means
the default, ``--fast[=N]`` level 1, ``--best`` 19, and 20-22 (zstd's ``--ultra``) are taken as 19.
An explicit ``--codec`` or ``--image-model`` wins over the level's choice of codec.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LEVEL = 6
MIN_LEVEL, MAX_LEVEL = 1, 19
ZSTD_BY_LEVEL = {1: 1, 2: 3, 3: 9}  # the classical levels' zstd level (4 and up: 19)


@dataclass(frozen=True)
class LevelPlan:
    level: int
    zstd_level: int  # the raw codec's zstd level
    structured: bool  # logs to the log codec, images to the circuit (image-pc)
    learned: bool  # text to the language model, images to the next-pixel model
    always_trial: bool  # every block also tries the classical fallback


def nearest(level: int) -> int:
    """The level used for what the user typed: 0 is the default, beyond 19 is 19."""
    if level <= 0:
        return DEFAULT_LEVEL
    return min(level, MAX_LEVEL)


def plan(level: int | None) -> LevelPlan:
    level = DEFAULT_LEVEL if level is None else nearest(level)
    return LevelPlan(
        level=level,
        zstd_level=ZSTD_BY_LEVEL.get(level, 19),
        structured=level >= 5,
        learned=level >= 6,
        always_trial=level == 5 or level >= 10,  # 6-9 keep the default's own choice (its output unchanged)
    )


def codec_for(kind: str, default: str, level_plan: LevelPlan) -> str:
    """The codec a sniffed kind goes to at this level (``default``: the kind's codec at level 6)."""
    if kind == "log":
        return default if level_plan.structured else "raw"
    if kind == "image":
        return default if level_plan.learned else "image-pc" if level_plan.structured else "raw"
    if kind == "text":
        return default if level_plan.learned else "raw"
    return default
