"""``python -m msnn.book``: the book's command line (:mod:`msnn.book.cli`)."""
import sys

from .cli import main

sys.exit(main())
