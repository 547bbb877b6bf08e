# The seed's Sparks (pegasus, stella): the deploy account from the seed CLAUDE.md.
ssh_user = "llm-agent"
