"""What a downloaded video is, with PyAV (FFmpeg): whether its bytes really are an MP4 that
decodes, its size and duration, and its first frame for the poster.

Only the archive's worker threads use this (tasks/archive/passes.py). Pillow never sees an
MP4 (it would refuse it anyway, after guessing at the bytes); FFmpeg sees only bytes that
start with an MP4 box, through its MP4 demuxer and the decoders of CODECS, so a file cannot
pick one of FFmpeg's hundreds of other parsers.
"""

import io
from dataclasses import dataclass

import av

from tasks.archive.fetch import FetchError, short

# What MP4s from Midjourney and the proxies hold (H.264; the others for good measure).
CODECS = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4"})
BOX_TYPES = (b"ftyp",)  # an MP4 (ISO base media file) starts with its ftyp box


@dataclass
class Video:
    width: int
    height: int
    duration: float | None  # seconds
    first_frame: object  # a PIL image of the first frame, for the poster


def looks_like_mp4(data):
    return len(data) >= 12 and data[4:8] in BOX_TYPES


def inspect_video(data, max_pixels):
    """The Video in `data` (bytes that looks_like_mp4), or FetchError."""
    try:
        with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
            if not container.streams.video:
                raise FetchError(
                    f"not a video (an MP4 without a video stream, {len(data):,} bytes)"
                )
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in CODECS:
                raise FetchError(
                    f"refused: video codec {codec[:20]} is not one we copy", permanent=True
                )
            width, height = stream.codec_context.width, stream.codec_context.height
            if width * height > max_pixels:
                raise FetchError(
                    f"refused: {width}x{height} pixels is more than the limit of {max_pixels:,}",
                    permanent=True,
                )
            frame = next(container.decode(stream), None)
            if frame is None:
                raise FetchError("broken video: no frame decodes")
            first = frame.to_image()
            duration = seconds(container, stream)
    except FetchError:
        raise
    except (av.FFmpegError, OSError, ValueError, TypeError, EOFError, StopIteration) as exc:
        raise FetchError(f"broken video: {short(exc)}") from exc
    return Video(width or first.width, height or first.height, duration, first)


def seconds(container, stream):
    if container.duration:
        return container.duration / av.time_base
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None
