# Every operator-facing value, grouped by concern and named <concern>_<thing>.
# group_data/<group>.py and inventory host data override these; README's data table mirrors
# this file. A host or group value must keep the type of the default here (sparkdeploy checks
# before any host is touched).

# --- Service account ----------------------------------------------------------------------
# Account that owns the model caches and the upstream checkout (the seed's "cluster" user).
service_user = "cluster"
# Its home directory; None means /home/<service_user>.
service_home = None

# --- Model server (vLLM) ------------------------------------------------------------------
# Recipe this host serves: a name in recipes/ or a path to a recipe YAML; None = no model server.
recipe = None
# Placeholder values on top of the recipe's defaults (port, host, max_model_len, ...).
vllm_params = {}
# Permit gpu_memory_utilization above 0.90 on the mxfp4 image (its overhead OOMs the box).
vllm_allow_high_gpu_memory_utilization = False
# Directory holding the vLLM compose project on the host.
vllm_compose_dir = "/opt/sparkdeploy/vllm"
# Container name (upstream's launcher uses vllm_node).
vllm_container_name = "vllm_node"
# Restarts after a crash before giving up (bounded: endless restarts leak unified memory).
vllm_restart_max_attempts = 3
# Grace period for /health while weights load and kernels compile.
vllm_healthcheck_start_period = "20m"
# OOM score of the vLLM container: high, so the kernel kills it before anything else.
vllm_oom_score_adj = 1000
# Open-files limit inside the container (upstream default).
vllm_nofile_limit = 1048576
# Run the container privileged (upstream's default; only mods that write /proc need it).
vllm_privileged = False
# Environment every vLLM container gets (upstream launcher's base environment, solo node).
vllm_base_env = {
    "NCCL_IGNORE_CPU_AFFINITY": "1",
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    "VLLM_HOST_IP": "127.0.0.1",
}
# Cache directories: path under the service user's home -> path inside the container.
vllm_cache_mounts = {
    ".cache/huggingface": "/root/.cache/huggingface",
    ".cache/flashinfer": "/root/.cache/flashinfer",
    ".cache/vllm": "/root/.cache/vllm",
    ".cache/ccache": "/root/.cache/ccache",
    ".cache/tiktoken_rs": "/root/.cache/tiktoken_rs",
    ".triton": "/root/.triton",
    ".tilelang": "/root/.tilelang",
}
# Require an API key on vLLM (VLLM_API_KEY); the proxy on the same site is given the key.
vllm_api_key_enabled = False
# vLLM API key (secret): None = generated once and kept in secrets_dir; supply from the environment.
vllm_api_key = None
# Address other hosts' proxies use to reach this vLLM; None = the inventory host name.
vllm_address = None
# Unified memory of the box, for the max_model_len estimate.
spark_memory_gib = 128
# Model facts for the memory estimate (weights, attention shape); add your models here.
vllm_model_profiles = {
    "openai/gpt-oss-120b": {
        "weights_gib": 61, "layers": 36, "kv_heads": 8, "head_dim": 64, "max_context": 131072,
    },
    "Qwen/Qwen3-Coder-30B-A3B-Instruct": {
        "weights_gib": 57, "layers": 48, "kv_heads": 4, "head_dim": 128, "max_context": 262144,
    },
}

# --- Upstream image build (eugr/spark-vllm-docker) ----------------------------------------
# Checkout of the upstream repository (recipes' mods are read from it); None = <home>/spark-vllm-docker.
upstream_checkout_dir = None

# --- Model weights ------------------------------------------------------------------------
# Where weights come from: "hf_cache" (the service user's ~/.cache/huggingface) or "nfs".
model_store = "hf_cache"
# With model_store "nfs": host directory holding a Hugging Face hub layout (models--org--name).
model_store_nfs_dir = "/mnt/models"
# ... and where the container sees it (read-only; HF_HUB_CACHE points there).
model_store_container_dir = "/models"

# --- LiteLLM proxy ------------------------------------------------------------------------
# Run the LiteLLM proxy (+ Postgres) on this host.
proxy_enabled = False
# A proxy routes to every model served by hosts of the same site.
proxy_site = "home"
# Directory holding the proxy compose project, its config and the tool-fix callback.
proxy_compose_dir = "/opt/sparkdeploy/litellm"
# LiteLLM image, pinned (never a moving tag such as main-latest).
proxy_image = "ghcr.io/berriai/litellm:v1.106.2-stable"
# Postgres image for the proxy's database, pinned.
proxy_db_image = "postgres:16.10-alpine"
# Address the proxy listens on.
proxy_bind_address = "0.0.0.0"
# Port the proxy listens on.
proxy_port = 4000
# Keep request and response bodies in the spend logs (off: prompts are private).
proxy_store_prompts = False
# Proxy master key (secret): None = generated once and kept in secrets_dir; supply from the environment.
proxy_master_key = None
# Proxy database password (secret): None = generated once and kept in secrets_dir.
proxy_db_password = None

# --- Client configuration (sparkdeploy clients) ------------------------------------------
# URL clients use for a proxy; None = http://<inventory host>:<proxy_port>.
proxy_client_url = None
# Environment variable the client files read the proxy key from.
clients_key_env = "SPARKDEPLOY_PROXY_KEY"
# OpenCode's context limit as a fraction of max_model_len (below it: OpenCode compacts in time).
clients_context_fraction = 0.9
# OpenCode's output-token limit per reply (capped at half the context limit).
clients_output_tokens = 16384

# --- Local state --------------------------------------------------------------------------
# Where generated secrets live on the workstation (relative to the project; never committed).
secrets_dir = ".sparkdeploy/secrets"
