# Hosts sparkdeploy manages. Every list here is a group (pyinfra convention); per-group values
# live in group_data/<group>.py, shared defaults in group_data/all.py.
from sparkdeploy.sandbox import inventory_hosts

# The seed's two Sparks: replace with your own hosts and the recipe each serves.
sparks = [
    ("pegasus.home.arpa", {
        "recipe": "openai-gpt-oss-120b",   # gpt-oss-120b on the community mxfp4 image
        "proxy_enabled": True,             # LiteLLM for both Sparks runs here
    }),
    ("stella.home.arpa", {
        "recipe": "qwen3-coder-30b-a3b",   # Qwen3-Coder on NVIDIA's vLLM container
        "model_store": "nfs",              # weights read from the NFS model store
        "vllm_expose_to_lan": True,        # pegasus's proxy reaches it over the LAN ...
        "vllm_api_key_enabled": True,      # ... so it requires an API key
    }),
]

# The local fresh-Spark stand-in: present while `sparkdeploy sandbox up` has it running.
sandbox = inventory_hosts()
