#!/bin/sh
# Build the image from the staged context (`make image`), and remove what the build replaced.
#   build-image.sh CONTEXT BASE_IMAGE IMAGE
# The Dockerfile's venv stage is tagged (VENV_IMAGE, prognos-venv:build) so that it is not
# left untagged: without this, each build left the replaced image and its venv stage
# behind, about 3.4 GB a build. The layers the new build shares with them stay (the cache).
set -eu
context=$1 base=$2 image=$3
stage=${VENV_IMAGE:-prognos-venv:build}
old=$(docker images -q "$image")
old_stage=$(docker images -q "$stage")
echo "docker build -q --build-arg BASE_IMAGE=$base -t $image $context"
docker build -q --build-arg BASE_IMAGE="$base" --target venv -t "$stage" "$context" >/dev/null
docker build -q --build-arg BASE_IMAGE="$base" -t "$image" "$context"
for pair in "$image $old" "$stage $old_stage"; do
  set -- $pair
  if [ -z "${2:-}" ] || [ "$2" = "$(docker images -q "$1")" ]; then continue; fi
  if docker rmi "$2" >/dev/null 2>&1; then
    echo "removed the $1 it replaced ($2)"
  else
    echo "kept the $1 it replaced ($2): a container uses it"
  fi
done
