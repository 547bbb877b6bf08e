# The local sandbox (a fresh-Spark stand-in): same recipe and code paths as a real Spark; only
# data points at stand-ins (images and repositories built locally under tests/standins/).
recipe = "openai-gpt-oss-120b"
# Two models at once inside a Spark's budget (README: Several models): 69 + 44 GiB reserved + 8
# for the OS of the 121.6 usable; the figures are a real Spark's, only the weights are small.
vllm_memory_gib = 69
models = [
    {"name": "qwen", "recipe": "tests/standins/recipes/qwen3.6-35b-a3b-fp8.yaml", "memory_gib": 44,
     "priority": -1},
]
vllm_model_profiles = {
    "openai/gpt-oss-120b": {
        "weights_gib": 61, "layers": 36, "kv_heads": 8, "head_dim": 64, "max_context": 131072,
    },
    # 10 of its 40 layers hold a KV cache (the others are linear attention)
    "Qwen/Qwen3.6-35B-A3B-FP8": {
        "weights_gib": 35, "layers": 10, "kv_heads": 2, "head_dim": 256, "max_context": 262144,
    },
}
proxy_enabled = True
proxy_site = "sandbox"
# The relay beside the proxy (in the proxy's stand-in image, like on a Spark).
relay_enabled = True
relay_turn_timeout = 60

# What the container backend cannot do (`sparkdeploy sandbox up` also writes these into the
# host's data, so a backend that can, like the qemu VM, overrides them per host).
host_can_mount_nfs = False
host_can_write_sysctl = False
host_can_lower_oom_score = False

# The stand-in NVIDIA toolkit repository (tests/standins/build_toolkit_repo.py): signed with a
# key generated on first build, served by `sparkdeploy sandbox up` at this URL, whose host name
# resolves inside the sandbox to this machine.
toolkit_repo_url = "http://sparkdeploy-standins:47380/stable/deb/$(ARCH)"
toolkit_repo_key_file = ".sparkdeploy/standins/toolkit-repo/nvidia-container-toolkit-keyring.gpg"

# The stand-in upstream (tests/standins/upstream, made into a git repository and copied into the
# sandbox by sparkdeploy.standins): its build script pulls the prebuilt stand-ins or builds a
# small image recording its build, as upstream's does.
upstream_repo_url = "/srv/sparkdeploy-standins/spark-vllm-docker.git"
upstream_commit = "de432871c6c3da0bc43f5c00d674625c03d6703e"
# Upstream's prebuilt images, served by the stand-in registry (sparkdeploy.sandbox.registry_standin)
# under the names the stand-in build-and-copy.sh pulls.
upstream_prebuilt_images = {
    "default": "sparkdeploy-standins:47382/eugr/spark-vllm:latest",
    "b12x": "sparkdeploy-standins:47382/eugr/spark-vllm-b12x:latest",
}
upstream_build_jobs = 2
upstream_build_timeout = 600
# The stand-ins build and start in seconds: wait less, report more often.
vllm_health_timeout = 120
proxy_health_timeout = 180
deploy_poll_interval = 3
# vLLM and the proxy listen inside the sandbox container: verify reaches them over SSH.
verify_via_ssh = True

# The stand-in repository carries only this toolkit version.
toolkit_version = "1.17.8-1"
# Debian trixie's names for Docker Engine with compose v2 (the "bare" variant has no engine).
docker_packages = ["docker.io", "docker-cli", "docker-compose"]
# No route to OpenAI's blob store: a small stand-in vocabulary in tiktoken's format.
caches_tiktoken_source = "tests/standins/tiktoken/o200k_base.tiktoken"
caches_tiktoken_sha256 = "e66088df4cdb28fbad3c55ac5a7ae741bc402e732ed948eb096a8ed6f852768f"
# The sandbox container cannot raise its open-files limit (20000 on CI machines) to upstream's 1048576.
vllm_nofile_limit = 16384

# The stand-in Hugging Face hub (tests/standins/hub_server.py, served by sparkdeploy.sandbox.hub_standin
# on the same host name): a tiny openai/gpt-oss-120b, and the pinned hub client's wheels, since the
# sandbox cannot reach PyPI through this machine's TLS-inspecting proxy.
model_hub_endpoint = "http://sparkdeploy-standins:47381"
model_pip_index_url = "http://sparkdeploy-standins:47381/simple"
# The stand-in's weights download in seconds: report progress often.
model_progress_interval = 3
# LiteLLM reaches Postgres through Prisma, whose engines it downloads from binaries.prisma.sh on
# first start; no package registry ships them, so in the sandbox the proxy runs stateless.
# Postgres itself (the stand-in image) still runs and is health-checked.
proxy_use_database = False

# sparkdeploy bench: small tests (the stand-in's numbers mean nothing), and a local text to cut
# prompts from (no route to gutenberg.org); the tokenizer is the stand-in model's own.
bench_prompt_tokens = [128]
bench_generation_tokens = [16]
bench_concurrency = [1, 2]
bench_runs = 1
bench_timeout = 300
bench_corpus = "README.md"

# The watchdog at sandbox speed: the stand-in answers in milliseconds and restarts in seconds, so
# a wedge is caught within seconds (the probe still gets 8 s: a loaded CI machine is slow); the
# hook appends each event to a file the tests read (a command, so a secret like a webhook URL:
# placed 0600, never printed).
watchdog_interval = 4
watchdog_probe_timeout = 8
watchdog_failures_before_restart = 2
watchdog_start_grace = 60
watchdog_max_restarts = 2
watchdog_restart_window = 3600
watchdog_notify_command = "cat >> /var/lib/sparkdeploy/watch/hook-events.jsonl"
