"""The question the evaluation asks of every test photo when none is given (``agent eval --question``).

Its own module so the command line can show it in ``--help`` without importing the evaluation.
"""

DEFAULT_QUESTION = "Inspect this {subject} photo. Which of the listed damage types are visible, and where?"
