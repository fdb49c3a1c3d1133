"""``make demo``: segment a stream of frames offline on the CPU and show the results."""
