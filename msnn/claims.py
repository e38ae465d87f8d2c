"""The chapters' ``from msnn.claims import ...``: the claims module is :mod:`msnn.book.claims`.

Kept so that the chapters' code, and with it their executed pages and nbval
references, stay as they are; new code imports :mod:`msnn.book.claims`.
"""
from .book.claims import *  # noqa: F401,F403
from .book.claims import CLAIMS_ENV, Rule, __all__  # noqa: F401
