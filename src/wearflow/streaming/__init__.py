"""Streaming wrist algorithms: epoch features from chunks, then SKDH's rules on them.

Calibration (van Hees sphere fit), wear (DETACH), the sleep window (TSO) and
sleep/wake, and activity levels, reproduced on per-second features computed in
two passes over a recording's chunks, so memory does not grow with the number of
samples. Each module names the SKDH function it mirrors and how it differs.
"""

from wearflow.streaming.chunks import ChunkLike, SampleChunk, recording_chunks
from wearflow.streaming.pipeline import StreamResult, run_wrist_stream

__all__ = ["ChunkLike", "SampleChunk", "StreamResult", "recording_chunks", "run_wrist_stream"]
