"""Limits of tiled translation, without torch: the command line checks its flags against them
(`python -m cutcore --help` imports no torch) and `cutcore.translate` enforces them."""

MIN_TILE = 16  # px: smaller tiles would run the generator once per few pixels
