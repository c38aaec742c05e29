"""Listening and comparison interface with recorded listener judgements (``soundsim listen``).

* :mod:`soundsim.listen.results`: read-only access to a collection's results (manifest,
  rankings, best settings) and AP@15 of one query;
* :mod:`soundsim.listen.app`: the Flask app (:func:`create_app`);
* :mod:`soundsim.listen.db`: the SQLite ratings database under ``results/<collection>/listening/``;
* :mod:`soundsim.listen.summary`: ratings against MAP@15 (table, Spearman, figure), what the
  ``listening`` workflow rule writes;
* :mod:`soundsim.listen.agreement`: which metric agrees with listeners (Spearman per system and
  per query for every metric of ``per_query.parquet``, bootstrap over judgements, table, figure).

Flask is imported only by :mod:`soundsim.listen.app`: the database and summary modules work
without it.
"""

from __future__ import annotations


def create_app(*args, **kwargs):
    """See :func:`soundsim.listen.app.create_app`."""
    from soundsim.listen.app import create_app as _create

    return _create(*args, **kwargs)
