#!/usr/bin/env bash
# The gallery's video (docs/GALLERY.md, "Video"), from the frames and JSON lines that
# bench/video_quality.sh keeps (SAVE_DIR=build/video-frames): the frames stylised one
# by one beside the video run with the default settings, as an animated GIF (each
# frame shown 2× with nearest-neighbour pixels), and the per-frame temporal error of
# each setting as an SVG plot.
#
#   docs/images/video/render.sh RESULTS.jsonl FRAMES_DIR CLIP INDEPENDENT_RUN DEFAULT_RUN
#   e.g. docs/images/video/render.sh runs/video.jsonl build/video-frames vtest 1 3
set -euo pipefail
cd "$(dirname "$0")/../../.."
results=$1 frames=$2 clip=$3 independent=$4 default=$5
out=docs/images/video
file=$(ls build/video-clips/"$clip".*)
ffmpeg -v error -y -framerate 5 -i "$frames/$clip-$independent/%03d.png" -framerate 5 -i "$frames/$clip-$default/%03d.png" \
  -filter_complex "[0][1]hstack=inputs=2,scale=iw*2:ih*2:flags=neighbor,split[a][b];[a]palettegen=max_colors=255[p];[b][p]paletteuse=dither=none" \
  -loop 0 "$out/$clip-side-by-side.gif"
/usr/bin/python3 bench/plot_temporal_error.py "$results" "$out/$clip-temporal-error.svg" \
  "frames one by one=content=$file;mode=independent" \
  "warped start only=content=$file;mode=video;temporal-weight=0" \
  "temporal loss (default)=content=$file;mode=video;temporal-weight=1e+07;temporal-frames=1;passes=1" \
  "+ long-term 1,10,20,40=content=$file;mode=video;temporal-frames=1,10,20,40" \
  "2 passes=content=$file;mode=video;passes=2"
