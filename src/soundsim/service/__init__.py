"""A similarity service built from an evaluated system ("more sounds like this").

* :mod:`soundsim.service.index`: build an index directory from the workflow's
  results (:func:`~soundsim.service.index.build_index`), open it and query it by
  fname, audio or vector (:class:`~soundsim.service.index.SimilarityIndex`),
  add and remove sounds atomically, export for a vector database;
* :mod:`soundsim.service.store`: the index directory's format and its atomic
  generations;
* :mod:`soundsim.service.embed`: embed new audio with the index's model, in
  that model's environment, loaded once;
* :mod:`soundsim.service.http`: ``soundsim serve``, a small HTTP JSON API.

CLI: ``soundsim index`` / ``index add|remove|info|export`` / ``query`` / ``serve``.
The vector indexes themselves are :mod:`soundsim.ann` (faiss).
"""
