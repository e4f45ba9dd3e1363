"""Video: tracks and keyframes, the online tracker, track evaluation, video savings and segment routing.

``tracks`` and ``keyframes`` are the track data types and keyframe compression that the
formats write (a low layer); the others analyse tracks (the analysis layer).
"""
