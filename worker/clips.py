"""Clip arithmetic: how InfiniteTalk cuts a video into clips, and how much speech its features need.

generate_infinitetalk renders frame_num frames a clip, each clip after the first overlapping the one before by
motion_frame frames. The worker's engine, the estimate (client/estimate.py) and the bench count clips with these
two functions, so the time a job is quoted and the clips it renders agree. Pure arithmetic: nothing imported.
"""

from __future__ import annotations

import math


def chunk_count(num_frames: int, frame_num: int, motion_frame: int) -> int:
    """How many clips generate_infinitetalk renders for num_frames when max_frames_num is num_frames.

    Its loop renders frame_num frames, then steps frame_num - motion_frame frames on until a clip reaches
    the end, so a video longer than one clip takes 1 + ceil((num_frames - frame_num) / step) clips.
    """
    if num_frames <= frame_num:
        return 1
    return 1 + math.ceil((num_frames - frame_num) / (frame_num - motion_frame))


def embedding_frames(num_frames: int, frame_num: int) -> int:
    """How many frames of speech features to compute: generate_infinitetalk skips a speaker whose features
    are not longer than frame_num, so short speech is padded with silence to frame_num + 1 frames."""
    return max(num_frames, frame_num + 1)
