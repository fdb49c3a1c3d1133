"""A fake pycuda for the TensorRT backend's tests; see driver.py and ../README.md."""

VERSION = (2024, 1)
VERSION_TEXT = "2024.1-fake"
FAKE = True
