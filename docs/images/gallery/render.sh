#!/bin/sh
# Renders the images of docs/GALLERY.md, one at a time, from the repository root:
#   docs/images/gallery/render.sh [path/to/neural-style]
# PNGs go to $TMPDIR (or /tmp); the committed JPEGs are re-encoded at quality 85.
set -eu
NST=${1:-build/apps/neural-style}
A=../shared/assets
G=docs/images/gallery
T=${TMPDIR:-/tmp}/nst-gallery
mkdir -p "$T"
common="--content $A/images/tubingen.jpg --weights $A/vgg19/vgg19-conv-hybrid.h5 --size 256 --quiet"
render() {  # name, options...
    name=$1; shift
    nice -n 10 "$NST" $common --output "$T/$name.png" "$@"
    /usr/bin/python3 -c "import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2], quality=85)" \
        "$T/$name.png" "$G/$name.jpg"
}
render none       --style $A/images/starry_night.jpg --iterations 150
render luminance  --style $A/images/starry_night.jpg --iterations 150 --preserve-colors luminance
render luminance-1e4 --style $A/images/starry_night.jpg --iterations 150 --preserve-colors luminance \
                  --style-weight 1e4
render histogram  --style $A/images/starry_night.jpg --iterations 150 --preserve-colors histogram
render post       --style $A/images/starry_night.jpg --iterations 150 --preserve-colors post
render scales     --style $A/images/starry_night.jpg --scales 2 --scale-iterations 100,100
render masks      --style $A/images/starry_night.jpg --style $A/images/kandinsky_composition_vii.jpg \
                  --style-masks $G/mask-left.png,$G/mask-right.png --iterations 150
