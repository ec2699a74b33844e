"""Export EMA models (ONNX, TorchScript, OpenVINO, NCNN, MNN, CoreML) through Ultralytics and verify them.

- :mod:`yolo_ema.export.exporting`: atomic export wrapper around ``YOLO.export``.
- :mod:`yolo_ema.export.graph`: operator inventory of exported graphs (standard ops only, no ATen/custom fallbacks).
- :mod:`yolo_ema.export.backends`: run an exported model on raw tensors (onnxruntime, TorchScript, OpenVINO,
  NCNN, MNN); the one onnxruntime session builder.
- :mod:`yolo_ema.export.coreml`: CoreML programs checked without macOS (structure, traced graph).
- :mod:`yolo_ema.export.parity`: raw-head and post-NMS parity against PyTorch, with a printed table.
- :mod:`yolo_ema.export.cli`: ``yolo-ema export``.

Submodules import torch/Ultralytics lazily where ``yolo-ema --help`` reaches them.
"""
