"""``python -m wearflow.cli``: the same as the ``wearflow`` command."""

from wearflow.cli import main

main()
