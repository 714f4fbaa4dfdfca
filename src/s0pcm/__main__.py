"""``python -m s0pcm``: the same as the ``s0pcm`` command."""

from .cli import main

main()
