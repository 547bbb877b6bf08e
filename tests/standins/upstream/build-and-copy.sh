#!/usr/bin/env bash
# Stand-in for eugr/spark-vllm-docker's build-and-copy.sh: the same ways of making an image, at a
# small scale. With no build flags it pulls the prebuilt "CI-tested" image and tags it (-t, by
# default vllm-node); --exp-b12x pulls the B12X prebuilt image (default tag vllm-node-b12x);
# --exp-mxfp4 builds locally from Dockerfile.mxfp4 (vllm-node-mxfp4) and --use-wheels from
# Dockerfile, each recording build-metadata.yaml into the image as upstream does. The prebuilt
# images come from the sandbox's stand-in registry (sparkdeploy.sandbox.registry_standin).
set -euo pipefail
cd "$(dirname "$0")"

PREBUILT_RUNNER_IMAGE="sparkdeploy-standins:47382/eugr/spark-vllm:latest"
PREBUILT_B12X_RUNNER_IMAGE="sparkdeploy-standins:47382/eugr/spark-vllm-b12x:latest"
tag=vllm-node
tag_given=false
jobs=16
jobs_given=false
exp_mxfp4=false
exp_b12x=false
use_wheels=false
while [ $# -gt 0 ]; do
    case "$1" in
        -t|--tag) tag="$2"; tag_given=true; shift 2 ;;
        -j|--build-jobs) jobs="$2"; jobs_given=true; shift 2 ;;
        --exp-mxfp4|--experimental-mxfp4) exp_mxfp4=true; shift ;;
        --exp-b12x|--experimental-b12x) exp_b12x=true; shift ;;
        --use-wheels) use_wheels=true; shift ;;
        *) echo "Unknown parameter passed: $1 (build-and-copy.sh stand-in)" >&2; exit 1 ;;
    esac
done
if [ "$exp_b12x" = true ] && [ "$exp_mxfp4" = true ]; then
    echo "Error: --exp-b12x is incompatible with --exp-mxfp4" >&2; exit 1
fi
prebuilt=$PREBUILT_RUNNER_IMAGE
if [ "$exp_b12x" = true ]; then
    prebuilt=$PREBUILT_B12X_RUNNER_IMAGE
    [ "$tag_given" = true ] || tag=vllm-node-b12x
fi
[ "$exp_mxfp4" = true ] && [ "$tag_given" = false ] && tag=vllm-node-mxfp4

if [ "$exp_mxfp4" = false ] && [ "$use_wheels" = false ]; then
    echo "Using prebuilt runner image ${prebuilt}..."
    [ "$jobs_given" = true ] && echo "Warning: --build-jobs is only used for Docker builds; ignoring it while pulling ${prebuilt}."
    docker pull "$prebuilt"
    docker tag "$prebuilt" "$tag"
    echo "Tagged $prebuilt as $tag"
    exit 0
fi

dockerfile=Dockerfile
[ "$exp_mxfp4" = true ] && dockerfile=Dockerfile.mxfp4
trap 'rm -f build-metadata.yaml' EXIT
cat > build-metadata.yaml <<META
build_date: $(date -u +%Y-%m-%dT%H:%M:%SZ)
build_script_commit: $(git rev-parse HEAD)
gpu_arch: 12.1a
base_image: sparkdeploy-standins/vllm-runtime:current
build_args:
  exp_mxfp4: $exp_mxfp4
  build_jobs: $jobs
META

echo "Building $tag from $dockerfile with BUILD_JOBS=$jobs"
start=$(date +%s)
docker build -t "$tag" --build-arg "BUILD_JOBS=$jobs" -f "$dockerfile" .
echo "Build of $tag finished in $(( $(date +%s) - start )) s"
