"""Test set-up: never let Ultralytics reach the network, keep its settings and runs inside a temp dir."""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
