"""trueai's media fields (FACTS-2 §2.6): the four pictures of a finished grid in
`imageUrls` with their `_640_N.webp` thumbnails, and VIDEO tasks, whose result is an MP4
(tasks/simulator/videos.py) in imageUrl, videoUrl and videoUrls (repeated in imageUrls).

Every link is signed like the task's image link and dies with it. `submit("VIDEO")` makes
a video task; of the tasks the simulator makes up, which IMAGINE tasks are videos follows
from the task id alone, so such a task is a video in every state and every run.
"""

import zlib

from .payloads import GRID_ACTIONS
from .videos import FPS, SECONDS

VIDEO_SHARE = 6  # one IMAGINE task in six is a video
GRID_SIZE = 4
VIDEO_BATCH = 1  # trueai's --bs 1: one MP4 per video task


def is_video_task(record, extras):
    """A task submitted as VIDEO, or one in VIDEO_SHARE of the IMAGINE tasks the simulator
    makes up (a test's own IMAGINE stays one)."""
    if record["action"] == "VIDEO":
        return True
    sampled = record["action"] == "IMAGINE" and extras.get("populated")
    return bool(sampled) and zlib.crc32(record["id"].encode()) % VIDEO_SHARE == 0


def trueai_media(record, extras):
    """The media fields of a trueai record (and its action, VIDEO for a video task)."""
    video = is_video_task(record, extras)
    if video:
        record["action"] = "VIDEO"
    link, stem = extras.get("result_link"), extras.get("result_stem")
    image = record["imageUrl"]
    fields = {
        "imageUrls": [{"url": image}] if image else [],
        "videoUrl": None,
        "videoUrls": None,
        "contentType": "image/png" if link else None,
        "videoDuration": None,
        "frameCount": None,
        "videoType": None,
    }
    if link is None:  # not finished with a result
        return fields
    if video:
        record["imageUrl"] = link(f"{stem}.mp4")
        videos = [
            {"url": link(f"{stem}_0_{i}.mp4"), "thumbnail": link(f"{stem}_0_{i}_640_N.webp")}
            for i in range(VIDEO_BATCH)
        ]
        fields.update(
            imageUrls=videos,
            videoUrl=record["imageUrl"],
            videoUrls=videos,
            contentType="video/mp4",
            videoDuration=SECONDS,
            frameCount=SECONDS * FPS,
            videoType="vid_1.1_i2v_480",
        )
    elif record["action"] in GRID_ACTIONS:
        fields["imageUrls"] = [
            {"url": link(f"{stem}_0_{i}.png"), "thumbnail": link(f"{stem}_0_{i}_640_N.webp")}
            for i in range(GRID_SIZE)
        ]
    return fields
