"""The applications: the only package that may import several stages (``pconv`` itself, doctor, demo).

Nothing imports this package; :mod:`pconv.__main__` and the ``pconv`` console script start it.
"""
