"""Read benchmark pickles without running their code.

``pickle.load`` executes whatever a file asks for. Benchmark pickles (MMSA, DialogueGCN/MMGCN) only
need numpy arrays and builtin containers, so this unpickler allows exactly those and refuses anything
else with an error naming the object the file tried to build.
"""

from __future__ import annotations

import pickle
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from pathlib import Path

from egmf.errors import DataFormatError, UnsafePickleError

# (module, name) pairs a numpy array or scalar pickle refers to, across numpy 1.x and 2.x.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "str"),
    ("builtins", "int"),
    ("builtins", "float"),
    ("builtins", "complex"),
    ("builtins", "bool"),
    ("_codecs", "encode"),  # how protocol-2 pickles store bytes written by Python 2 (latin1)
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, **kwargs):
        super().__init__(file, **kwargs)
        self._path = path

    def find_class(self, module: str, name: str):
        # Python 2 names (``__builtin__.set``, ``copy_reg``...), which protocol 0-2 pickles use, are
        # checked under their Python 3 names, as pickle itself maps them (fix_imports). The mapping's
        # keys are Python 2 module names only, so it never renames a Python 3 global.
        module, name = NAME_MAPPING.get((module, name), (IMPORT_MAPPING.get(module, module), name))
        if (module, name) in _ALLOWED or (module.startswith("numpy") and name.startswith("dtype")):
            return super().find_class(module, name)
        raise UnsafePickleError(
            self._path, "pickle global", "numpy arrays and builtin containers only", f"{module}.{name}"
        )


def safe_load(path: str | Path, encoding: str = "latin1"):
    """Unpickle ``path`` allowing numpy arrays and builtins only.

    ``encoding="latin1"`` reads pickles written by Python 2 (DialogueGCN, older MMSA files) correctly.
    Truncated or corrupt files raise :class:`DataFormatError` instead of a bare ``EOFError``.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return _NumpyOnlyUnpickler(f, path, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, IndexError, TypeError, AttributeError) as e:
        raise DataFormatError(path, "pickle", "a complete, readable pickle file", f"{type(e).__name__}: {e}") from e
