"""Developer tools: the fake agent, benchmarks (`python -m tools.bench`), fault campaigns
(`python -m tools.chaos`). Not shipped; may import any workspace member."""
