"""Reference for decoding a video FILE (spec/fixtures/video/file/): what transformers 5.24 does with a file path.

Not a cases_*.py module (dump_reference.py does not run it): it needs what the pinned reference environment lacks,
`torchcodec` (transformers' default video decoder, exact seek mode) and the `ffmpeg` / `ffprobe` tools, e.g.
    pip install --target /tmp/tc --no-deps torchcodec; apt-get install ffmpeg
    PYTHONPATH=/tmp/tc /work/pyref/bin/python scripts/parity/video_file_reference.py

It writes:
- clip_d.mp4: 12 frames of 28x56 at 8 fps, H.264 yuv420p (encoded once, then kept: encoders are not bit-stable);
- ffprobe.json: what the real ffprobe prints for processors/video_io.ts's probe command (PROBE_ARGS), so the
  spec can replay it without FFmpeg;
- decoded/frame_NNN.png: torchcodec's decoded frames; the script asserts that the ffmpeg command line that
  video_io.ts runs gives the same bytes;
- reference.safetensors: Glm46VProcessor (tiny_b) on the file path, frames sampled by the processor:
  `proc:input_ids`, `proc:video_grid_thw`, `proc:pixel_values_videos`; metadata `torchcodec` (total, fps, duration
  as torchcodec reports them) and `frames_indices`.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from torchcodec.decoders import VideoDecoder
from transformers import AutoProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases_video import draw_clip, video_chat  # noqa: E402
from common import FIXTURES, write_reference  # noqa: E402
from tiny_models import model_dir  # noqa: E402

OUT = FIXTURES / "video" / "file"
PROBE_ARGS = ["-v", "error", "-select_streams", "v:0", "-show_entries",
              "stream=width,height,time_base,r_frame_rate:stream_side_data=rotation:packet=pts,dts,duration,flags",
              "-of", "json"]
DECODE_ARGS = ["-v", "error", "-nostdin", "-i", "{file}", "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "pipe:1"]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    video = OUT / "clip_d.mp4"
    if not video.exists():
        src = OUT / "src"
        src.mkdir(exist_ok=True)
        for i, f in enumerate(draw_clip(12, 28, 56, 4)):
            Image.fromarray(f).save(src / f"{i:03d}.png")
        subprocess.run(["ffmpeg", "-v", "error", "-framerate", "8", "-i", str(src / "%03d.png"), "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", "-g", "6", "-bf", "2", str(video)], check=True)
        for p in src.iterdir():
            p.unlink()
        src.rmdir()
    probe = subprocess.run(["ffprobe", *PROBE_ARGS, str(video)], check=True, capture_output=True, text=True).stdout
    (OUT / "ffprobe.json").write_text(probe)

    dec = VideoDecoder(str(video), seek_mode="exact")
    m = dec.metadata
    frames = dec.get_frames_at(indices=list(range(m.num_frames))).data.permute(0, 2, 3, 1).contiguous().numpy()
    raw = subprocess.run(["ffmpeg", *[a.replace("{file}", str(video)) for a in DECODE_ARGS]], check=True,
                         capture_output=True).stdout
    ours = np.frombuffer(raw, np.uint8).reshape(frames.shape)
    assert np.array_equal(ours, frames), f"ffmpeg and torchcodec decode differently: max {np.abs(ours.astype(int) - frames).max()}"
    (OUT / "decoded").mkdir(exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(OUT / "decoded" / f"frame_{i:03d}.png", optimize=True)

    proc = AutoProcessor.from_pretrained(model_dir("tiny_b"))
    chat = video_chat(["clip_d.mp4"], "What moves?")
    prompt = proc.apply_chat_template(chat, add_generation_prompt=True)
    out = proc(text=[prompt], videos=[str(video)], return_tensors="pt")
    sampled = proc.video_processor(videos=[str(video)], return_metadata=True)["video_metadata"][0]
    notes = {"messages": json.dumps([chat]), "text": json.dumps([prompt]), "processor_class": type(proc).__name__,
             "torchcodec": json.dumps({"total": m.num_frames, "fps": m.average_fps, "duration": m.duration_seconds}),
             "frames_indices": json.dumps([int(i) for i in sampled.frames_indices]),
             "probe_args": json.dumps(PROBE_ARGS), "decode_args": json.dumps(DECODE_ARGS)}
    tensors = {f"proc:{k}": out[k] for k in ["input_ids", "video_grid_thw", "pixel_values_videos"]}
    write_reference(OUT / "reference.safetensors", tensors, model_dir("tiny_b"), "glm46v",
                    "Glm46VProcessor on an H.264 file decoded by torchcodec (transformers' default)", notes)


if __name__ == "__main__":
    main()
