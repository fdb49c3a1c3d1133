"""The ``segnet-ros`` command line."""
