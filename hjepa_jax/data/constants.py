"""Normalisation constants shared by the data package and the model code.

Pipelines deliver uint8 images so host-to-device copies stay 4x smaller than
float32; the model normalises on device with these values, which are on the
0-1 RGB scale (divide uint8 pixels by 255 first).
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
