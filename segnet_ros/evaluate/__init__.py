"""Accuracy against ground truth (``segnet-ros evaluate``), ROS-free, beside the bag tool and quantize.

- :mod:`.metrics`: the confusion matrix summed over a set, and the figures it gives (pure numpy);
- :mod:`.labels`: label masks in every format as class ids (ids, palette, colours, Cityscapes labelIds);
- :mod:`.pairs`: images paired with labels by stem or the Cityscapes layout, or a bag's image and
  label messages by header stamp;
- :mod:`.scoring`: SegNets (backends, precisions) scored on the same frames;
- :mod:`.plot`: the confusion matrix as a picture.

From Python (what ``quantize`` can call to weigh an INT8 model on labelled frames)::

    source = open_labelled(["frames/", "labels/"])            # or ["drive.mcap"], label_topic="/labels"
    fp32, int8 = evaluate_backends(model, [fp32_backend, int8_backend], source)
    drop = fp32.metrics.mean_iou - int8.metrics.mean_iou      # fractions: 0.01 is one point
"""

from .labels import MASK_FORMATS, LabelDecoder
from .metrics import ClassScore, ConfusionMatrix, Metrics
from .pairs import BagSet, FileSet, LabelledFrame, open_labelled
from .scoring import AT, UPSAMPLE, Score, ScoreSettings, evaluate, evaluate_backends

__all__ = ["AT", "MASK_FORMATS", "UPSAMPLE", "BagSet", "ClassScore", "ConfusionMatrix", "FileSet", "LabelDecoder",
           "LabelledFrame", "Metrics", "Score", "ScoreSettings", "evaluate", "evaluate_backends", "open_labelled"]
