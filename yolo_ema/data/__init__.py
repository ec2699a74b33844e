"""Datasets: the catalogue (datasets.yaml) and `yolo-ema prepare synthetic | visdrone | coco`.

Nothing here imports torch or Ultralytics. Entry points: ``synthetic.generate``, ``visdrone.prepare``,
``coco.prepare``, ``catalogue.load_catalogue``; the OUT layout is described in ``layout``.
"""
