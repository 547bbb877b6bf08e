"""sparkrelay: a caller (Claude, through MCP or HTTP) and a Spark's local models in one conversation.

Every participant sees the whole history, told who said what; each exchange is on disk before
its reply returns. Runs on the host in the LiteLLM proxy's image (Starlette, uvicorn, httpx and
the MCP SDK are already there) and talks to the proxy's OpenAI-compatible endpoint.
"""
