"""Search served from Triton: the ``face_search`` python model over a gallery (engines/gallery) next to the served face
pipeline (engines/triton). It sits above both, so neither imports the other."""
