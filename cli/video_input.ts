// The --video argument of `glm46v generate`: a video file (ffmpeg) or a folder of frames, sampled and
// preprocessed by the model folder's video processor.
import { loadVideo } from '../processors/video_io';
import { loadVideoProcessor, VideoProcessorOutput } from '../processors/video_processor';

export async function prepareVideo(modelDir: string, source: string): Promise<VideoProcessorOutput> {
  const vp = loadVideoProcessor(modelDir);
  const video = await loadVideo(source, { sampleIndices: (meta) => vp.sampleFrames(meta) });
  return vp.preprocess([video]);
}
