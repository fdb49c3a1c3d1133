"""pycuda.autoinit makes a context current on the importing thread only: library code must not use it."""

raise ImportError("fake pycuda: library code must not import pycuda.autoinit; create and push a context explicitly")
