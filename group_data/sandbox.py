# The local sandbox (a fresh-Spark stand-in): same recipe and code paths as a real Spark; only
# data points at stand-ins (images and repositories built locally under tests/standins/).
recipe = "openai-gpt-oss-120b"
proxy_enabled = True
proxy_site = "sandbox"
