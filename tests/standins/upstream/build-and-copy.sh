#!/usr/bin/env bash
# Stand-in for eugr/spark-vllm-docker's build-and-copy.sh: same flags for the mxfp4 path
# (-t TAG, -j N, --exp-mxfp4), same build-metadata.yaml recorded into the image, but the image
# is a small one running the stand-in model server (no GPU, no registries in the sandbox).
set -euo pipefail
cd "$(dirname "$0")"

tag=vllm-node
tag_given=""
jobs=16
exp_mxfp4=false
while [ $# -gt 0 ]; do
    case "$1" in
        -t|--tag) tag="$2"; tag_given=1; shift 2 ;;
        -j|--build-jobs) jobs="$2"; shift 2 ;;
        --exp-mxfp4) exp_mxfp4=true; shift ;;
        *) echo "build-and-copy.sh (stand-in): unsupported option $1" >&2; exit 2 ;;
    esac
done
dockerfile=Dockerfile
if [ "$exp_mxfp4" = true ]; then
    dockerfile=Dockerfile.mxfp4
    [ -n "$tag_given" ] || tag=vllm-node-mxfp4
fi

trap 'rm -f build-metadata.yaml' EXIT
cat > build-metadata.yaml <<META
build_date: "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
build_script_commit: "$(git rev-parse HEAD)"
gpu_arch: "12.1a"
base_image: "sparkdeploy-standins/vllm-runtime:current"
exp_mxfp4: $exp_mxfp4
META

echo "Building $tag from $dockerfile with BUILD_JOBS=$jobs"
start=$(date +%s)
docker build -t "$tag" --build-arg "BUILD_JOBS=$jobs" -f "$dockerfile" .
echo "Build of $tag finished in $(( $(date +%s) - start )) s"
