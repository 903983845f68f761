#!/usr/bin/env bash
# The video settings side by side on real clips and a synthetic pan (docs/BENCHMARKS.md,
# "Video"): for each clip, frames stylised one by one, the warped start alone, the
# temporal loss at several weights, the long-term loss and multi-pass; one JSON line
# each from build/apps/nst-video-quality (temporal error E, mean content and style
# losses, seconds).
#
#   bench/video_quality.sh OUT.jsonl [CLIPS_DIR]
#
# The clips: pan.mp4 (made here with ffmpeg: a window over Tübingen moving 9 px a
# frame at 480 px, so 1.8 px at 96 px), vtest.avi (pedestrians, a fixed camera) and
# cup.mp4 (a handheld camera, with audio) from Debian's opencv-doc package.
# Environment: SIZE (96), FRAMES (0:12), WEIGHTS (the shared VGG-19), STYLE,
# KAPPAS (the --temporal-weight values to try on the pan), DEFAULT_KAPPA (the one
# used on the real clips and with the long-term loss and multi-pass), CLIPS (which
# clips), LONG_AND_PASSES=0 (leave out the long-term and multi-pass runs), SAVE_DIR
# (keep each run's frames: the gallery's side-by-side clip), INDEPENDENT=0 (leave
# out the frames stylised one by one), PASSES (of the multi-pass run, 2).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/video_quality.sh OUT.jsonl [CLIPS_DIR]}
clips=${2:-build/video-clips}
size=${SIZE:-96}
frames=${FRAMES:-0:12}
weights=${WEIGHTS:-../shared/assets/vgg19/vgg19-conv-hybrid.h5}
style=${STYLE:-../shared/assets/images/starry_night.jpg}
kappas=${KAPPAS-0 1e7 3e7 1e8}
default_kappa=${DEFAULT_KAPPA:-1e7}
quality=build/apps/nst-video-quality

mkdir -p "$clips"
if [ ! -f "$clips/pan.mp4" ]; then
  ffmpeg -v error -y -loop 1 -i ../shared/assets/images/tubingen.jpg \
    -filter_complex "[0:v]crop=w=480:h=360:x='150+9*n':y=200,scale=160:120,format=yuv420p[v]" \
    -map '[v]' -frames:v 24 -r 10 -c:v libx264 -crf 12 "$clips/pan.mp4"
fi
docs=/usr/share/doc/opencv-doc/examples/data
if [ ! -f "$clips/vtest.avi" ] || [ ! -f "$clips/cup.mp4" ]; then
  if [ ! -f "$docs/vtest.avi" ]; then
    # opencv-doc's files may be excluded from /usr/share/doc (dpkg path-exclude): unpack the package.
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download opencv-doc >/dev/null && dpkg -x opencv-doc_*.deb x)
    docs=$tmp/x/usr/share/doc/opencv-doc
    cp "$docs/examples/data/vtest.avi" "$clips/vtest.avi"
    gunzip -c "$docs/opencv4/html/cup.mp4.gz" > "$clips/cup.mp4"
    rm -rf "$tmp"
  else
    cp "$docs/vtest.avi" "$clips/vtest.avi"
    gunzip -c /usr/share/doc/opencv-doc/opencv4/html/cup.mp4.gz > "$clips/cup.mp4"
  fi
fi

common=(--style "$style" --weights "$weights" --frames "$frames" --size "$size" --iterations 200
        --frame-iterations 100 --threads 0)
# With SAVE_DIR, each run's frames are also written as SAVE_DIR/<clip>-<run>/%03d.png.
runs=0
run() {
  local save=()
  if [ -n "${SAVE_DIR:-}" ]; then
    runs=$((runs + 1))
    mkdir -p "$SAVE_DIR/$clip-$runs"
    save=(--save "$SAVE_DIR/$clip-$runs/%03d.png")
  fi
  "$quality" "$@" "${common[@]}" "${save[@]}" | tee -a "$out"
}

for clip in ${CLIPS:-pan vtest cup}; do
  file=$(ls "$clips/$clip".*)
  if [ "${INDEPENDENT:-1}" = 1 ]; then run --mode independent --content "$file"; fi
  if [ "$clip" = pan ]; then
    for kappa in $kappas; do run --mode video --content "$file" --temporal-weight "$kappa"; done
  else
    run --mode video --content "$file" --temporal-weight 0
    run --mode video --content "$file" --temporal-weight "$default_kappa"
  fi
  if [ "${LONG_AND_PASSES:-1}" = 1 ]; then
    run --mode video --content "$file" --temporal-weight "$default_kappa" --temporal-frames 1,10,20,40
    run --mode video --content "$file" --temporal-weight "$default_kappa" --passes "${PASSES:-2}"
  fi
done
