"""Exact k-NN over catalogue embeddings (:class:`SimilarityIndex`) and the optional FAISS backends
(:class:`FaissBackend`). Modules:

- :mod:`.similarity_index`: the public ``SimilarityIndex`` (search, search_ids, save, load);
- :mod:`.catalogue`: ids, metadata, ``where`` filters, ``exclude`` lists;
- :mod:`.focus`: steerable focuses and their weights;
- :mod:`.persistence`: the saved index files and the model identity check;
- :mod:`.folder`: an index folder opened one way (``fashrec.open_index``) and written one way, sealed;
- :mod:`.layout`, :mod:`.photo_catalogue`, :mod:`.integrity`: its file names, ``catalogue.json`` and the
  photos it serves, its seal;
- :mod:`.distances`: the paper's metrics in float64 and the float32 kernels with their error bounds;
- :mod:`.engines`: the exact engines (flat scan, projection pruning, cityblock cascade);
- :mod:`.planner`: which engine answers, by measured cost;
- :mod:`.faiss_backend`: FAISS flat / HNSW (``pip install 'fashrec[faiss]'``).
"""
from fashrec.index.distances import METRICS
from fashrec.index.faiss_backend import FaissBackend
from fashrec.index.focus import MAX_FOCUS_WEIGHT, parse_focus
from fashrec.index.similarity_index import SimilarityIndex

__all__ = ["FaissBackend", "MAX_FOCUS_WEIGHT", "METRICS", "SimilarityIndex", "parse_focus"]
