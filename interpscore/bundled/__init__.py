"""Data that ships inside the wheel: the evaluation corpus (``interpscore.bundled.corpus``)
and the probing tasks (``interpscore.bundled.tasks``).

In a checkout these subpackages are the repository's ``fixtures/corpus`` and
``fixtures/tasks`` folders, mapped by ``pyproject.toml``; code finds them through
:mod:`interpscore.subjects.paths`, never by a path relative to this file.
"""
