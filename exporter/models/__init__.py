"""The torch model definitions: SCRFD (backbones, neck, head) and the ArcFace backbones, module names as in the original checkpoints."""
