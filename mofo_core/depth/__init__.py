"""Depth maps: the codec to and from depth tokens, depth files, display ranges, fitting images to the model size,
and alignment to metric depth.
"""
