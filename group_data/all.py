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
# Let the LAN reach vLLM directly (binds 0.0.0.0); off = only this host and its containers can.
vllm_expose_to_lan = False
# Address vLLM binds to when not exposed: Docker's default bridge gateway (host.docker.internal).
vllm_private_address = "172.17.0.1"
# Address other hosts' proxies use to reach this vLLM; None = the inventory host name.
vllm_address = None
# Unified memory of the box, for the max_model_len estimate.
spark_memory_gib = 128
# What vLLM's --gpu-memory-utilization is a fraction of on a Spark: the memory the OS sees
# (owners measure about 121.6 GiB of the 128); the budget for reservations.
spark_usable_memory_gib = 121.6
# Kept out of every reservation: the OS, Docker, the proxy and Postgres, the page cache.
spark_os_reserve_gib = 8.0
# Model facts for the memory estimate (weights, attention shape); add your models here.
vllm_model_profiles = {
    "openai/gpt-oss-120b": {
        "weights_gib": 61, "layers": 36, "kv_heads": 8, "head_dim": 64, "max_context": 131072,
    },
    "Qwen/Qwen3-Coder-30B-A3B-Instruct": {
        "weights_gib": 57, "layers": 48, "kv_heads": 4, "head_dim": 128, "max_context": 262144,
    },
}

# --- Several models on one Spark (README: Several models) -------------------------------
# The recipe's memory reservation in GiB (becomes its --gpu-memory-utilization); None = the
# recipe's gpu_memory_utilization. Required when models is set.
vllm_memory_gib = None
# Models served beside the recipe, started after it in this order, each a dict: name (its
# container, compose project and dir get "-<name>"), recipe, memory_gib (its reservation);
# optional vllm_params, model_revision, priority, exclusive_group.
models = []
# For each exclusive_group, the name of the member that runs (the others are stopped).
models_active = {}
# Port of models[0] when its vllm_params set none; models[1] gets the next, and so on.
models_first_port = 8001
# The recipe's priority among the host's models (higher: more important, killed last).
vllm_priority = 0
# OOM score steps between priority levels: the least important model keeps vllm_oom_score_adj,
# so earlyoom and the kernel take it first.
vllm_oom_priority_step = 100

# --- Recipe trust (a recipe is third-party input; the vLLM container runs as root) ---------
# Host paths (besides the service home and the model store) a recipe's extra_docker_args may mount.
recipe_allowed_mounts = []
# Let recipes use --privileged, --cap-add, --device and --security-opt (power over the host).
recipe_allow_privileges = False

# --- Two Sparks as one (a cluster over the ConnectX-7 link) --------------------------------
# Cluster this host is a node of: the hosts sharing the value, in inventory order, head first
# (set it in group_data/<group>.py); None = a single Spark.
cluster_group = None
# Link interfaces, one per twin of the QSFP port (the outer port's two PCIe x4 twins).
cluster_link_interfaces = ["enp1s0f1np1", "enP2p1s0f1np1"]
# One subnet per twin (never the same subnet on both twins).
cluster_link_subnets = ["192.168.177.0/24", "192.168.178.0/24"]
# Host number of the head in each subnet; rank R gets first_host + R (.11, .12, ...).
cluster_link_first_host = 11
# This node's link addresses with prefix, one per twin; None = from the subnets and its rank.
cluster_link_addresses = None
# MTU of the link interfaces (9000: the community default; NVIDIA's RoCE guidance: 4200).
cluster_link_mtu = 9000
# RoCE devices NCCL uses (NCCL_IB_HCA); both twins for the full 200G.
cluster_rdma_devices = ["rocep1s0f1", "roceP2p1s0f1"]
# Port the head's rendezvous (or Ray head) listens on.
cluster_master_port = 29501
# How ranks join: "no-ray" (vLLM's own multi-node runtime, upstream's default) or "ray".
cluster_executor = "no-ray"
# Locked-memory limit of cluster ranks (-1 = unlimited; RDMA pins memory).
cluster_memlock_limit = -1
# Port of the workers' sshd on the link, for the head's image copy.
cluster_ssh_port = 22
# Key the head copies images to its workers with (secret): None = generated once, kept in secrets_dir.
cluster_ssh_key = None

# --- vLLM image (eugr/spark-vllm-docker's build-and-copy.sh, or a registry) ----------------
# Image digests to run, per image tag (the recipe's container), e.g. {"vllm-node": "sha256:…"}:
# pulled by digest and tagged. Unpinned images are made once and the digest they got recorded.
vllm_image_pins = {}
# What upstream's build-and-copy.sh pulls and tags for recipes without local-build flags, at
# upstream_commit: "default" (no flags) and "b12x" (--exp-b12x).
upstream_prebuilt_images = {"default": "eugr/spark-vllm:latest", "b12x": "eugr/spark-vllm-b12x:latest"}
# Checkout of the upstream repository (mods are mounted from it); root's, since root runs its
# build script; None = /opt/sparkdeploy/spark-vllm-docker.
upstream_checkout_dir = None
# Repository the checkout is cloned from.
upstream_repo_url = "https://github.com/eugr/spark-vllm-docker.git"
# Full commit the checkout is pinned to; the image is rebuilt when it changes (upstream moves daily).
upstream_commit = "358bf26e3d7d315450a6159ccdc0b38cbbd6b855"
# Parallel compile jobs for build-and-copy.sh -j (lower it if the build runs out of memory).
upstream_build_jobs = 16
# Seconds an image build or pull may take before it is stopped (an mxfp4 build: 25-45 minutes).
upstream_build_timeout = 5400
# Directory on the host for image build and pull logs (the deploy shows progress and points here).
upstream_build_log_dir = "/var/log/sparkdeploy"
# Host packages the checkout, the build and the service checks use (DGX OS ships them).
upstream_build_packages = ["git", "curl"]

# --- Service bring-up ---------------------------------------------------------------------
# Seconds to wait for vLLM's /health after a (re)start (loading weights and compiling take minutes).
vllm_health_timeout = 1800
# Seconds to wait for the proxy's /health/liveliness after a (re)start.
proxy_health_timeout = 300
# Seconds between checks (and progress lines) while waiting for a build or a service.
deploy_poll_interval = 30
# Container log lines shown when a service does not come up.
service_failure_log_lines = 40
# Action of stack.py: "status", "stop" or "start" (pyinfra inventory.py stack.py --data stack_action=stop).
stack_action = "status"

# --- Watchdog (a wedged engine: /health 200, nothing generated) ----------------------------
# Probe each served model with a one-token completion and restart it after repeated failures.
watchdog_enabled = True
# Seconds between probes (the timer waits this long after each pass ends).
watchdog_interval = 60
# Seconds a one-token completion may take before the probe counts as failed.
watchdog_probe_timeout = 20
# Failed probes in a row before the model's compose project is restarted.
watchdog_failures_before_restart = 3
# Seconds after a (re)start during which a model whose /health does not answer yet is loading.
watchdog_start_grace = 2700
# Restarts at most this many times in watchdog_restart_window; then it leaves the model to a person.
watchdog_max_restarts = 3
# Seconds of the window the restart bound counts in (and alerts repeat in).
watchdog_restart_window = 21600
# Read vLLM's /metrics: a failed probe while the generation counter moves is busy, not wedged.
watchdog_use_metrics = True
# Webhook every restart and alert is POSTed to as JSON (secret: it may carry a token); None = none.
watchdog_notify_url = None
# Shell command every restart and alert is piped to as JSON (secret, like the URL); None = none.
watchdog_notify_command = None
# Cap the GPU clock at boot (upstream's firmware-shutdown guard, nvidia-smi -lgc 200,<MHz>); None = off.
gpu_clock_limit_mhz = None

# --- Watcher (another host power-cycles a Spark that answers neither SSH nor HTTP) ----------
# Run the watcher on this host (not a Spark it watches: it never watches itself).
watcher_enabled = False
# Inventory hosts it watches; empty = every other host that serves a model.
watcher_hosts = []
# Seconds between checks.
watcher_interval = 60
# Seconds the SSH banner and the serving endpoint each get per check.
watcher_timeout = 10
# Dead checks in a row (no SSH banner and no answer from vLLM's /health) before a power cycle.
watcher_failures_before_power_cycle = 5
# Power cycles at most this many times per host in watcher_window seconds.
watcher_max_power_cycles = 1
# Seconds of the window the power-cycle bound counts in.
watcher_window = 3600
# Seconds after a power cycle before the host is checked again (a Spark boots and loads slowly).
watcher_boot_grace = 900
# Seconds the power-cycle command may run.
watcher_command_timeout = 120
# This host's power-cycle command, run by its watcher (secret: smart-plug URL, IPMI password).
power_cycle_command = None

# --- Endpoint validation (sparkdeploy verify) ---------------------------------------------
# URL of this host's vLLM for verify; None = http://<vllm_address or host name>:<port>.
verify_vllm_url = None
# Seconds one verify request may take.
verify_timeout = 120
# Reach vLLM and the proxy through an SSH tunnel to the host (for ports not reachable directly).
verify_via_ssh = False

# --- Fleet status (sparkdeploy status) ----------------------------------------------------
# Seconds a host may take to answer (SSH login plus one probe of each of its models).
status_timeout = 60

# --- Benchmarks (sparkdeploy bench, with llama-benchy) ------------------------------------
# Prompt sizes in tokens (llama-benchy --pp; 2048 is its default, as published figures use).
bench_prompt_tokens = [2048]
# Tokens each request generates, exactly (llama-benchy --tg --exact-tg; 32 is its default).
bench_generation_tokens = [32]
# Concurrent requests per test (llama-benchy --concurrency); 1 is the single-stream speed.
bench_concurrency = [1, 2, 4, 8]
# Measured runs per test, after one warm-up run (llama-benchy --runs).
bench_runs = 3
# Seconds one endpoint's measurement may take before it is stopped and reported as failed.
bench_timeout = 1800
# A throughput that falls, or a time to first token that rises, by more than this fraction of
# the previous run's is a regression (flagged; exit status 2).
bench_regression_threshold = 0.1
# Local tokenizer.json prompts are cut with; None = the served model's own, read from the host's weights.
bench_tokenizer = None
# Local text file prompts are cut from; None = llama-benchy's default book (fetched from gutenberg.org once).
bench_corpus = None
# Where benchmark records (one JSON per run, per host and model) and the chart go, beside secrets_dir.
bench_results_dir = ".sparkdeploy/bench"

# --- Model weights ------------------------------------------------------------------------
# Where weights come from: "hf_cache" (the service user's ~/.cache/huggingface) or "nfs".
model_store = "hf_cache"
# With model_store "nfs": host directory holding a Hugging Face hub layout (models--org--name).
model_store_nfs_dir = "/mnt/models"
# ... and where the container sees it (read-only; HF_HUB_CACHE points there).
model_store_container_dir = "/models"
# Revision of the recipe's model (branch, tag or 40-hex commit); None = the default branch as first fetched.
model_revision = None
# Seconds a download may run; after that it stops, keeps its partial files and the next deploy resumes.
model_download_timeout = 21600
# Seconds between progress lines while weights download.
model_progress_interval = 30
# Hugging Face hub endpoint for downloads (HF_ENDPOINT); None = huggingface.co.
model_hub_endpoint = None
# Hub token for gated models (secret): None = none; supply it from the environment, never commit it.
model_hub_token = None
# Run vLLM with HF_HUB_OFFLINE=1: the deploy brings the weights, so a restart never reaches the hub.
model_hub_offline = True
# Python package index for the download tool (the pinned hub client); None = PyPI.
model_pip_index_url = None
# Directory of the download tool on the host (venv, script, and run/ with its log and status).
model_fetch_dir = "/opt/sparkdeploy/weights"

# --- Docker and NVIDIA Container Toolkit ------------------------------------------------
# Toolkit version for all four packages where the deploy installs them (>= 1.17.8, CVE-2025-23266).
toolkit_version = "1.19.0-1"
# Distribution packages for Docker Engine and the compose v2 plugin, installed only where no engine is.
docker_packages = ["docker.io", "docker-compose-v2"]

# --- NFS model store ----------------------------------------------------------------------
# NFS mounts (export, mount point, type, fstab options, docker_requires: Docker waits for the mount).
nfs_mounts = [
    {
        "source": "flashstore.home.arpa:/volume1/models",
        "path": "/mnt/models",
        "fstype": "nfs4",
        # The seed's options minus intr (ignored by the kernel since 2.6.25).
        "options": "rw,hard,_netdev,noatime,nofail,rsize=1048576,wsize=1048576",
        "docker_requires": True,
    },
]
# NFSv4 id-mapping domain in /etc/idmapd.conf; must match the NAS or files show as nobody.
nfs_idmap_domain = "home.arpa"

# --- Cache directories --------------------------------------------------------------------
# Mode of the service user's cache directories (the vllm_cache_mounts paths and their parents).
caches_mode = "0755"
# Cache directory (a vllm_cache_mounts path) that holds the Harmony vocabulary for tiktoken-rs.
caches_tiktoken_dir = ".cache/tiktoken_rs"
# Where o200k_base.tiktoken comes from: an https URL the host downloads, or a file in the project.
caches_tiktoken_source = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
# sha256 of o200k_base.tiktoken: a file with this digest is left alone, any other is replaced.
caches_tiktoken_sha256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

# --- Page-cache drop ----------------------------------------------------------------------
# Cron schedule of the periodic page-cache drop (every 4 h, as in the seed); "" turns it off.
page_cache_drop_schedule = "0 */4 * * *"

# --- earlyoom -----------------------------------------------------------------------------
# Available memory (KiB) below which earlyoom sends SIGTERM (4 GiB; replaces the 10 % default).
earlyoom_memory_term_kib = 4194304
# Available memory (KiB) below which it sends SIGKILL.
earlyoom_memory_kill_kib = 2097152
# Free-swap floor in percent; 100 ignores swap (a Spark has none by default).
earlyoom_swap_percent = 100
# Seconds between memory reports in the journal (0 = none).
earlyoom_report_interval = 3600
# Process names (regexes on /proc/PID/comm) earlyoom never picks: login path, systemd, Docker, NFS.
earlyoom_avoid = ["sshd.*", "systemd.*", "dockerd", "containerd.*", "earlyoom", "rpc[.].*"]
# Process names it picks first: vLLM's engine and workers (CUDA memory is not in their RSS).
earlyoom_prefer = ["VLLM::.*", "vllm"]
# Further earlyoom options, checked against the installed version (1.7 has no --ignore).
earlyoom_extra_args = []

# --- sshd hardening -----------------------------------------------------------------------
# PermitRootLogin (no, prohibit-password, forced-commands-only, yes).
sshd_permit_root_login = "no"
# PasswordAuthentication; refused while an account in sshd_key_login_users has no authorized key.
sshd_password_authentication = False
# KbdInteractiveAuthentication (keyboard-interactive passwords through PAM).
sshd_kbd_interactive_authentication = False
# Accounts that must keep SSH access by key besides the one pyinfra logs in as (always checked:
# ssh_user, else ~/.ssh/config's User, else your login); None = service_user.
sshd_key_login_users = None
# AllowTcpForwarding: local, because NVIDIA Sync and the DGX Dashboard use SSH local forwards.
sshd_allow_tcp_forwarding = "local"
# AllowAgentForwarding.
sshd_allow_agent_forwarding = False
# X11Forwarding.
sshd_x11_forwarding = False
# MaxAuthTries (dev-sec: 2; clients offering many agent keys need IdentitiesOnly).
sshd_max_auth_tries = 2
# LoginGraceTime in seconds.
sshd_login_grace_time = 30
# MaxSessions per connection.
sshd_max_sessions = 10
# MaxStartups (start:rate:full) against unauthenticated connection floods.
sshd_max_startups = "10:30:60"
# ClientAliveInterval in seconds.
sshd_client_alive_interval = 300
# ClientAliveCountMax (unanswered keep-alives before disconnecting).
sshd_client_alive_count_max = 3
# LogLevel (VERBOSE logs the key fingerprint of every login).
sshd_log_level = "VERBOSE"
# Hybrid post-quantum KexAlgorithms, offered first: those the host's sshd has
# (OpenSSH 9.9 has both, Ubuntu 24.04's 9.6 the second).
sshd_kex_post_quantum = ["mlkem768x25519-sha256", "sntrup761x25519-sha512@openssh.com"]
# Classic KexAlgorithms after them (ssh-audit warns: not post-quantum); keep curve25519-sha256@libssh.org:
# pyinfra logs in with paramiko, which has no post-quantum kex.
sshd_kex_algorithms = ["curve25519-sha256", "curve25519-sha256@libssh.org"]
# Ciphers (ssh-audit rates these without failures).
sshd_ciphers = [
    "chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes256-ctr", "aes192-ctr",
    "aes128-gcm@openssh.com", "aes128-ctr",
]
# MACs (encrypt-then-MAC only; ssh-audit rates these without failures).
sshd_macs = ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "umac-128-etm@openssh.com"]
# HostKeyAlgorithms (no NIST curves, no SHA-1 RSA).
sshd_host_key_algorithms = ["ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"]
# OOMScoreAdjust of ssh.service (-1000: never OOM-killed; every SSH session inherits it).
sshd_oom_score_adjust = -1000

# --- Preflight ----------------------------------------------------------------------------
# Free disk (GiB) the preflight wants under the service home and Docker's data root (weights, image).
preflight_min_free_gib = 100

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
# Connect the proxy to its Postgres (virtual keys, spend logs); false = stateless, master key only.
proxy_use_database = True
# Proxy master key (secret): None = generated once and kept in secrets_dir; supply from the environment.
proxy_master_key = None
# Proxy database password (secret): None = generated once and kept in secrets_dir.
proxy_db_password = None

# --- Relay: Claude and the local models in one conversation (README: The relay) -----------
# Run the relay beside this host's proxy (HTTP API and MCP endpoint, one key).
relay_enabled = False
# Directory holding the relay's compose project, settings and code.
relay_compose_dir = "/opt/sparkdeploy/relay"
# Where conversations are kept (one JSON file each; outside the project, kept across deploys).
relay_data_dir = "/var/lib/sparkdeploy/relay"
# Image the relay runs in; None = proxy_image (it carries Starlette, httpx and the MCP SDK).
relay_image = None
# Address the relay listens on.
relay_bind_address = "0.0.0.0"
# Port the relay listens on (HTTP API under /v1, MCP at /mcp).
relay_port = 4100
# Seconds to wait for the relay's /health after a (re)start.
relay_health_timeout = 120
# Seconds a local model may take for one turn before it is recorded as a failed turn.
relay_turn_timeout = 600
# Longest message (and system prompt) accepted, in characters.
relay_max_message_chars = 100000
# Most automatic rounds one request may run.
relay_max_rounds = 20
# Most participants in one conversation.
relay_max_participants = 8
# Highest max_tokens a participant may ask for (also never above half its model's context).
relay_max_tokens = 32768
# A participant's max_tokens when it names none (thinking models need more: set it per participant).
relay_default_max_tokens = 4096
# Context assumed for a model whose max_model_len the deploy cannot tell (history is trimmed to it).
relay_default_context_tokens = 8192
# Relay key (secret): None = generated once and kept in secrets_dir; supply from the environment.
relay_api_key = None
# URL clients use for the relay; None = http://<inventory host>:<relay_port>.
relay_client_url = None
# Environment variable the Claude Code MCP file reads the relay key from.
clients_relay_key_env = "SPARKRELAY_API_KEY"

# --- Client configuration (sparkdeploy clients) ------------------------------------------
# URL clients use for a proxy; None = http://<inventory host>:<proxy_port>.
proxy_client_url = None
# Environment variable the client files read the proxy key from.
clients_key_env = "SPARKDEPLOY_PROXY_KEY"
# OpenCode's context limit as a fraction of max_model_len (below it: OpenCode compacts in time).
clients_context_fraction = 0.9
# OpenCode's output-token limit per reply (capped at half the context limit).
clients_output_tokens = 16384

# --- Host capabilities (false: tasks skip that step, visibly; the container sandbox) -------
# Mount NFS file systems (the container sandbox shares the host kernel, which has no NFS client).
host_can_mount_nfs = True
# Write kernel settings under /proc/sys, e.g. vm.drop_caches (read-only in the container sandbox).
host_can_write_sysctl = True
# Give processes a negative OOM score, e.g. OOMScoreAdjust=-1000 on sshd (needs CAP_SYS_RESOURCE).
host_can_lower_oom_score = True
# Configure network links with netplan (the container sandbox's links are Docker's).
host_can_configure_links = True

# --- NVIDIA Container Toolkit repository --------------------------------------------------
# NVIDIA's apt repository (flat; apt expands $(ARCH)); used only where the toolkit is missing.
toolkit_repo_url = "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)"
# Its signing key, dearmored, on the workstation (the deploy uploads it for apt's signed-by):
# curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --dearmor -o <this file>
toolkit_repo_key_file = "files/nvidia-container-toolkit-keyring.gpg"

# --- Drift check --------------------------------------------------------------------------
# True while `sparkdeploy drift` plans a run (pyinfra --dry --data drift_check=true): tasks
# skip imperative steps that would always report a change.
drift_check = False

# --- Local state --------------------------------------------------------------------------
# Where generated secrets live on the workstation (relative to the project; never committed).
secrets_dir = ".sparkdeploy/secrets"
